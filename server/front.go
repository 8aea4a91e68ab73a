package server

import (
	"bufio"
	"bytes"
	"net"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"vigil/hub"
)

// The hub needs net/http's request and Hijacker contract (coder/websocket
// hijacks through http.Hijacker) while ingest runs on Fiber (fasthttp), and
// users need one origin. Fiber owns the public listener, so the ingest path
// pays nothing; a request for /ws is hijacked from fasthttp, its header
// parsed into an *http.Request, and the socket handed to the hub, which
// answers the upgrade itself. No net/http server and no goroutine of
// fasthttp's stay with the session: fasthttp keeps hijacked connections
// (KeepHijackedConns) and releases its request context and read buffer at
// once the handshake is answered, and the session runs on a goroutine of the
// hub's. See docs/architecture.md.

// hijackWS is the Fiber handler of /ws.
func hijackWS(h *hub.Hub, c *fiber.Ctx) error {
	// The request memory is reused once the handler returns: parse it now.
	head := c.Request().Header.Header()
	req, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(head), len(head)))
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "malformed upgrade request")
	}
	req.RemoteAddr = c.Context().RemoteAddr().String()
	ctx := c.Context()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(conn net.Conn) {
		// A WebSocket client sends nothing before the 101 (RFC 6455 §4.1), so
		// fasthttp's reader, released when this returns, holds no bytes of
		// the session, and the socket itself is served.
		if u, ok := conn.(interface{ UnsafeConn() net.Conn }); ok {
			conn = u.UnsafeConn()
		}
		h.ServeConn(conn, req)
	})
	return nil
}
