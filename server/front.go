package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// The hub needs net/http (coder/websocket hijacks through http.Hijacker) while
// ingest runs on Fiber (fasthttp), and users need one origin. Fiber owns the
// public listener, so the ingest path pays nothing; a request for /ws is
// hijacked from fasthttp and its connection handed, with the request header
// replayed in front of any bytes fasthttp had buffered, to a net/http server
// that reads from connListener instead of a socket. See docs/architecture.md.

// connListener is a net.Listener fed by hijacked connections.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// replayConn reads the replayed request header first, then the connection.
type replayConn struct {
	net.Conn
	head   io.Reader
	closed chan struct{}
	once   sync.Once
}

func (c *replayConn) Read(p []byte) (int, error) {
	if c.head != nil {
		n, err := c.head.Read(p)
		if errors.Is(err, io.EOF) {
			c.head = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return c.Conn.Read(p)
}

func (c *replayConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// hijackWS is the Fiber handler of /ws.
func (l *connListener) hijackWS(c *fiber.Ctx) error {
	// The request memory is reused once the handler returns: copy the header.
	head := bytes.Clone(c.Request().Header.Header())
	ctx := c.Context()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(conn net.Conn) {
		rc := &replayConn{Conn: conn, head: bytes.NewReader(head), closed: make(chan struct{})}
		select {
		case l.conns <- rc:
		case <-l.closed:
			return
		}
		// fasthttp closes the socket when this returns, so wait until the
		// net/http side is done with it.
		<-rc.closed
	})
	return nil
}
