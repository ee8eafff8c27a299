/**
 * An HTTP proxy in front of moto that tests point AWS_ENDPOINT_URL_ECR at.
 *
 * - It counts GetAuthorizationToken calls per region as they arrive at the
 *   AWS endpoint (region from the SigV4 credential scope, action from
 *   X-Amz-Target), so "one call per region" is observed from outside the
 *   code under test.
 * - It rewrites `expiresAt` in GetAuthorizationToken answers to now + 12h.
 *   moto answers a fixed expiry in 2015, real ECR answers 12 hours ahead;
 *   the rewrite only makes moto's answer realistic (without it every Secret
 *   would be due on every run). Nothing else in the answer is changed.
 * - `fail(region)` makes it answer that region with an AWS JSON error
 *   (AccessDeniedException, HTTP 400) instead of forwarding.
 * - `tokenLifetime(region, seconds)` makes that region's tokens expire
 *   sooner (or later), so a test can have one token inside the refresh window
 *   and another outside it without waiting hours.
 * - Every call gets a password of its own, as from real ECR: moto's
 *   (`<account>-auth-token`, the same on every call) plus `-<16 hex>`, so it
 *   still names the account it was issued for (which tests read), two calls
 *   never give the same password, and they differ within bcrypt's 72 bytes.
 *   `onToken` hears of each one before the answer leaves: the node's
 *   registries (registry.ts) accept exactly those, until they expire.
 * - ECR Public, which moto does not have: its GetAuthorizationToken (the SDK
 *   sends it to AWS_ENDPOINT_URL_ECR_PUBLIC, which `awsEnv` points here, with
 *   X-Amz-Target SpencerFrontendService.GetAuthorizationToken) is answered
 *   here, as ECR Public answers it: one authorizationData object, a 12-hour
 *   token of its own per call. Its SigV4 Authorization header must be scoped
 *   to us-east-1 and the service `ecr-public` (what real AWS requires:
 *   InvalidSignatureException otherwise); calls are counted, failed and
 *   timed under the name "ecr-public" where ECR's are under their region.
 * - Pointed at by AWS_ENDPOINT_URL_STS too (`stsEnv`), it counts STS
 *   AssumeRole calls per role ARN and remembers which access key each
 *   answer handed out, so GetAuthorizationToken calls are also counted per
 *   (role, region): the role is the one whose credentials signed the call.
 *   `failRole(arn)` answers AssumeRole of that role with an STS error.
 */

const GET_TOKEN = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
const GET_PUBLIC_TOKEN = "SpencerFrontendService.GetAuthorizationToken";
/** The name ECR Public's calls, passwords, failures and lifetimes are kept under. */
export const ECR_PUBLIC = "ecr-public";
const TOKEN_LIFETIME_S = 12 * 3600;

export interface EcrProxy extends AsyncDisposable {
  url: string;
  /** The variables that point KubeECR at this proxy. */
  awsEnv: Record<string, string>;
  /** The registry passwords ECR handed out (decoded from authorizationToken), by region ("ecr-public"). */
  passwords: Map<string, string>;
  /** GetAuthorizationToken calls seen for `region` (or "ecr-public"), or in all. */
  tokenCalls(region?: string): number;
  /** AWS_ENDPOINT_URL_ECR and AWS_ENDPOINT_URL_STS both at this proxy. */
  stsEnv: Record<string, string>;
  /** GetAuthorizationToken calls per "<role or base>|<region>", as signed. */
  roleTokenCalls: Map<string, number>;
  /** STS AssumeRole calls per role ARN (refused ones included). */
  assumeRoleCalls: Map<string, number>;
  /** Answers AssumeRole of `role` with an STS error from now on. */
  failRole(role: string, code?: string, message?: string): void;
  /** Never answers AssumeRole of `role` (until the caller gives up or the proxy closes). */
  hangRole(role: string): void;
  /** Refuses AssumeRole of `role` asking for more than `seconds`, as STS does (ValidationError). */
  maxSession(role: string, seconds: number): void;
  /** Answers `region` with an AWS error from now on. */
  fail(region: string, code?: string, message?: string): void;
  /** Tokens of `region` expire `seconds` after they are handed out (default 12h). */
  tokenLifetime(region: string, seconds: number): void;
  close(): Promise<void>;
}

/** "AWS4-HMAC-SHA256 Credential=AKID/20261127/us-west-2/ecr/aws4_request, ..." → "us-west-2". */
export function regionOf(authorization: string | null): string {
  return /Credential=[^/]+\/\d{8}\/([^/]+)\//.exec(authorization ?? "")?.[1] ?? "unknown";
}

/**
 * What is wrong with a SigV4 Authorization header for ECR Public's
 * GetAuthorizationToken, or undefined: the algorithm, a credential scope of
 * <key>/<yyyymmdd>/us-east-1/ecr-public/aws4_request, signed headers that
 * include host, x-amz-date and x-amz-target, and a 64-hex signature. The
 * signature itself is not recomputed (the proxy does not hold the secret key
 * of every identity a test uses): a wrong key is moto's and STS's business.
 */
export function publicSignatureProblem(authorization: string | null): string | undefined {
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]+)$/
      .exec(authorization ?? "");
  if (!m) return "Authorization is not a SigV4 (AWS4-HMAC-SHA256) header";
  const [, , , region, service, signed, signature] = m;
  if (region !== "us-east-1") return `Credential should be scoped to a valid region: ${region}`;
  if (service !== ECR_PUBLIC) {
    return `Credential should be scoped to correct service: '${ECR_PUBLIC}', not '${service}'`;
  }
  const headers = signed.split(";");
  for (const h of ["host", "x-amz-date", "x-amz-target"]) {
    if (!headers.includes(h)) return `SignedHeaders lacks ${h}`;
  }
  if (signature.length !== 64) return "Signature is not 64 hex digits";
  return undefined;
}

export interface EcrProxyOptions {
  /** Default lifetime of the tokens it hands out, in seconds (12 h, as ECR). */
  tokenLifetimeSeconds?: number;
  /** Serve HTTPS here too (the node's pods reach it as https://api.ecr.<region>.amazonaws.com). */
  tls?: { hostname: string; port: number; cert: string; key: string };
  /** Told every password handed out, with its expiry (seconds since the epoch), before the answer leaves. */
  onToken?: (region: string, password: string, expiresAt: number) => Promise<void>;
}

/** "AWS4-HMAC-SHA256 Credential=AKID/…" → "AKID". */
function accessKeyOf(authorization: string | null): string {
  return /Credential=([^/]+)\//.exec(authorization ?? "")?.[1] ?? "";
}

/** A password of its own for one call: moto's, which names the account, plus 16 random hex digits. */
function distinct(motoPassword: string): string {
  const random = crypto.getRandomValues(new Uint8Array(8));
  return `${motoPassword}-${Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export function startEcrProxy(motoUrl: string, opts: EcrProxyOptions = {}): EcrProxy {
  const calls = new Map<string, number>();
  const failures = new Map<string, { code: string; message: string }>();
  const passwords = new Map<string, string>();
  const lifetimes = new Map<string, number>();
  const roleCalls = new Map<string, number>();
  const assumeCalls = new Map<string, number>();
  const roleFailures = new Map<string, { code: string; message: string }>();
  const hanging = new Set<string>();
  const maxSessions = new Map<string, number>();
  const closing = new AbortController();
  /** Access key id → the role ARN whose AssumeRole answer handed it out. */
  const keyRoles = new Map<string, string>();

  const defaultLifetime = opts.tokenLifetimeSeconds ?? TOKEN_LIFETIME_S;

  /** ECR Public's GetAuthorizationToken, answered here (moto has no ECR Public). */
  const publicToken = async (req: Request) => {
    calls.set(ECR_PUBLIC, (calls.get(ECR_PUBLIC) ?? 0) + 1);
    await req.body?.cancel();
    const json = (status: number, body: unknown) =>
      Response.json(body, {
        status,
        headers: { "content-type": "application/x-amz-json-1.1", date: new Date().toUTCString() },
      });
    const problem = publicSignatureProblem(req.headers.get("authorization"));
    if (problem) return json(403, { __type: "InvalidSignatureException", message: problem });
    const failure = failures.get(ECR_PUBLIC);
    if (failure) return json(400, { __type: failure.code, message: failure.message });
    const expiresAt = Math.floor(Date.now() / 1000) +
      (lifetimes.get(ECR_PUBLIC) ?? defaultLifetime);
    const password = distinct("ecr-public-auth-token");
    passwords.set(ECR_PUBLIC, password);
    await opts.onToken?.(ECR_PUBLIC, password, expiresAt);
    return json(200, {
      authorizationData: { authorizationToken: btoa(`AWS:${password}`), expiresAt },
    });
  };

  const handler = async (req: Request) => {
    if (req.headers.get("x-amz-target") === GET_PUBLIC_TOKEN) return await publicToken(req);
    const region = regionOf(req.headers.get("authorization"));
    const isGetToken = req.headers.get("x-amz-target") === GET_TOKEN;
    if (isGetToken) {
      calls.set(region, (calls.get(region) ?? 0) + 1);
      const by = `${
        keyRoles.get(accessKeyOf(req.headers.get("authorization"))) ?? "base"
      }|${region}`;
      roleCalls.set(by, (roleCalls.get(by) ?? 0) + 1);
    }
    // STS speaks the query protocol: a form body with Action=AssumeRole&RoleArn=….
    const body = req.body ? await req.arrayBuffer() : undefined;
    const form = req.headers.get("content-type")?.startsWith("application/x-www-form-urlencoded")
      ? new URLSearchParams(new TextDecoder().decode(body))
      : undefined;
    const assumed = form?.get("Action") === "AssumeRole" ? form.get("RoleArn") ?? "" : undefined;
    if (assumed !== undefined) {
      assumeCalls.set(assumed, (assumeCalls.get(assumed) ?? 0) + 1);
      if (hanging.has(assumed)) {
        // Until the proxy closes: the caller's own deadline is what is tested.
        await new Promise((resolve) => closing.signal.addEventListener("abort", resolve));
        return new Response(null, { status: 503 });
      }
      const asked = Number(form?.get("DurationSeconds") ?? 3600);
      const refusal = asked > (maxSessions.get(assumed) ?? Infinity)
        ? {
          code: "ValidationError",
          message:
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        }
        : roleFailures.get(assumed);
      if (refusal) {
        return new Response(
          `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender` +
            `</Type><Code>${refusal.code}</Code><Message>${refusal.message}</Message></Error>` +
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>",
          { status: 403, headers: { "content-type": "text/xml" } },
        );
      }
    }
    const failure = failures.get(region);
    if (isGetToken && failure) {
      return Response.json({ __type: failure.code, message: failure.message }, {
        status: 400,
        headers: { "content-type": "application/x-amz-json-1.1" },
      });
    }
    const url = new URL(req.url);
    const headers = new Headers(req.headers);
    for (const h of ["host", "content-length", "connection"]) headers.delete(h);
    const upstream = await fetch(`${motoUrl}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body,
    });
    if (assumed !== undefined && upstream.ok) {
      const xml = await upstream.text();
      const key = /<AccessKeyId>([^<]+)<\/AccessKeyId>/.exec(xml)?.[1];
      if (key) keyRoles.set(key, assumed);
      return new Response(xml, { status: upstream.status, headers: upstream.headers });
    }
    if (!isGetToken || !upstream.ok) return upstream;
    const answer = await upstream.json();
    for (const data of answer.authorizationData ?? []) {
      data.expiresAt = Math.floor(Date.now() / 1000) + (lifetimes.get(region) ?? defaultLifetime);
      const password = distinct(atob(data.authorizationToken).replace(/^AWS:/, ""));
      data.authorizationToken = btoa(`AWS:${password}`);
      passwords.set(region, password);
      await opts.onToken?.(region, password, data.expiresAt);
    }
    return Response.json(answer, {
      headers: { "content-type": upstream.headers.get("content-type") ?? "" },
    });
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  const secure = opts.tls &&
    Deno.serve({
      hostname: opts.tls.hostname,
      port: opts.tls.port,
      cert: Deno.readTextFileSync(opts.tls.cert),
      key: Deno.readTextFileSync(opts.tls.key),
      onListen: () => {},
    }, handler);

  const url = `http://127.0.0.1:${server.addr.port}`;
  const close = async () => {
    closing.abort();
    await Promise.all([server.shutdown(), secure?.shutdown()]);
  };
  return {
    url,
    awsEnv: { AWS_ENDPOINT_URL_ECR: url, AWS_ENDPOINT_URL_ECR_PUBLIC: url },
    passwords,
    tokenCalls: (r) => r ? calls.get(r) ?? 0 : [...calls.values()].reduce((a, b) => a + b, 0),
    fail: (r, code = "AccessDeniedException", message = `User is not authorized in ${r}`) =>
      failures.set(r, { code, message }),
    tokenLifetime: (r, seconds) => lifetimes.set(r, seconds),
    stsEnv: { AWS_ENDPOINT_URL_ECR: url, AWS_ENDPOINT_URL_STS: url },
    roleTokenCalls: roleCalls,
    assumeRoleCalls: assumeCalls,
    failRole: (
      role,
      code = "AccessDenied",
      message = `User is not authorized to perform: sts:AssumeRole on resource: ${role}`,
    ) => roleFailures.set(role, { code, message }),
    hangRole: (role) => hanging.add(role),
    maxSession: (role, seconds) => maxSessions.set(role, seconds),
    close,
    [Symbol.asyncDispose]: close,
  };
}
