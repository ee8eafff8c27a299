/**
 * The bench's own Kubernetes client: Deno's native `fetch` over one
 * `Deno.createHttpClient` built from the cluster's CA and a client
 * certificate, and nothing else. The reference client (reference.ts) speaks
 * to the API server through it, and bench.ts uses the same client to create
 * the Secrets of its scenarios (tens of thousands, concurrently: kubectl one
 * object at a time would take minutes).
 */

/** Where the API server is and who to be: PEM file paths, as the test environment writes them. */
export interface KubeEndpoint {
  server: string;
  caCert: string;
  cert: string;
  key: string;
}

/** A non-2xx answer; `status` is the HTTP status code. */
export class KubeHttpError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    body: string,
  ) {
    // The Status message names the object and what was refused; a bench
    // Secret holds no credential worth hiding.
    super(`${method} ${path}: HTTP ${status}: ${messageOf(body)}`);
  }
}

function messageOf(body: string): string {
  try {
    return JSON.parse(body).message ?? body.slice(0, 200);
  } catch {
    return body.slice(0, 200);
  }
}

export class NativeKube {
  /** Bytes of response bodies read through `json()` (list pages dominate). */
  bytesRead = 0;

  private constructor(readonly server: string, readonly client: Deno.HttpClient) {}

  /**
   * By default Deno negotiates HTTP/2 when the server offers it (the API
   * server does): every request shares one connection. `http1` pins
   * HTTP/1.1, where the pool opens one connection per request in flight.
   */
  static async connect(ep: KubeEndpoint, opts: { http1?: boolean } = {}): Promise<NativeKube> {
    const [ca, cert, key] = await Promise.all(
      [ep.caCert, ep.cert, ep.key].map((p) => Deno.readTextFile(p)),
    );
    const client = Deno.createHttpClient({
      caCerts: [ca],
      cert,
      key,
      ...(opts.http1 ? { http2: false } : {}),
    });
    return new NativeKube(ep.server, client);
  }

  /**
   * Sends one request and returns the answer's status and parsed body.
   * Throws KubeHttpError unless the status is 2xx or listed in `accept`.
   */
  async json<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    opts: { contentType?: string; accept?: number[] } = {},
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.server}${path}`, {
      method,
      client: this.client,
      headers: {
        accept: "application/json",
        "user-agent": "kubeecr-bench",
        ...(body === undefined ? {} : { "content-type": opts.contentType ?? "application/json" }),
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    this.bytesRead += text.length;
    if (!res.ok && !opts.accept?.includes(res.status)) {
      throw new KubeHttpError(method, path, res.status, text);
    }
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  close() {
    this.client.close();
  }
}

/**
 * Runs `fn` over `items` with at most `limit` calls in flight. Items are
 * pulled lazily, so a generator can produce them as they are consumed.
 */
export async function forEachLimited<T>(
  items: Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const it = items[Symbol.iterator]();
  const worker = async () => {
    for (let next = it.next(); !next.done; next = it.next()) await fn(next.value);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}
