/**
 * An HTTP CONNECT proxy that records every tunnel it is asked for, for the
 * proxy tests (issue 14, item 8). `route` maps the requested "host:port" to
 * where the tunnel really goes (the pod's kubernetes.default.svc:443 is a
 * relay on a loopback address); unrouted requests are refused with 403 but
 * still recorded, so a test sees every attempt.
 */

export interface ConnectProxy extends AsyncDisposable {
  /** http://127.0.0.1:<port> */
  url: string;
  /** "host:port" of each CONNECT, in order of arrival. */
  connects: string[];
  close(): Promise<void>;
}

export function startConnectProxy(
  route: (target: string) => { hostname: string; port: number } | undefined,
): ConnectProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connects: string[] = [];
  const conns = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    try {
      // The request head: "CONNECT host:port HTTP/1.1\r\n...\r\n\r\n".
      const buf = new Uint8Array(8192);
      let head = "";
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) return;
        head += new TextDecoder().decode(buf.subarray(0, n));
      }
      const [method, target] = head.split(" ");
      if (method !== "CONNECT") return;
      connects.push(target);
      const to = route(target);
      if (!to) {
        await conn.write(new TextEncoder().encode("HTTP/1.1 403 Forbidden\r\n\r\n"));
        return;
      }
      const upstream = await Deno.connect(to);
      conns.add(upstream);
      await conn.write(new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n"));
      await Promise.allSettled([
        conn.readable.pipeTo(upstream.writable),
        upstream.readable.pipeTo(conn.writable),
      ]);
    } catch {
      /* the client went away */
    } finally {
      for (const c of [conn]) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      conns.delete(conn);
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) serve(conn);
    } catch { /* closed */ }
  })();
  const close = async () => {
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await accepting;
  };
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    connects,
    close,
    [Symbol.asyncDispose]: close,
  };
}
