package server

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"time"

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
	c.Status(fiber.StatusSwitchingProtocols) // for the request metrics; nothing is written
	ctx := c.Context()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(conn net.Conn) {
		// Serve the socket itself, so that fasthttp's reader is released
		// when this returns; whatever that reader had read ahead comes first.
		if u, ok := conn.(interface{ UnsafeConn() net.Conn }); ok {
			raw := u.UnsafeConn()
			conn = hub.PrefixConn(raw, readAhead(conn, raw))
		}
		h.ServeConn(conn, req)
	})
	return nil
}

// readAhead returns the bytes fasthttp had read of the connection beyond the
// upgrade request. A client following RFC 6455 §4.1 sends nothing before the
// 101, so it is nearly always empty; reading the hijacked connection with a
// deadline already passed takes only what is buffered.
func readAhead(hijacked, raw net.Conn) []byte {
	if err := raw.SetReadDeadline(time.Now()); err != nil {
		return nil
	}
	defer raw.SetReadDeadline(time.Time{})
	var early []byte
	var buf [512]byte
	for {
		n, err := hijacked.Read(buf[:])
		early = append(early, buf[:n]...)
		if err != nil || n == 0 {
			return early
		}
	}
}
