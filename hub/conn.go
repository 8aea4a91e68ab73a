package hub

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A session's socket is written through a frameWriter and read through a
// small bufio.Reader, instead of the 4 KB reader and writer net/http hands a
// hijacker: an idle session holds no buffer, and the writer coalesces every
// frame queued since its last write into one system call. See
// docs/BENCHMARKS.md for what this saved.

// readBufferSize is enough for a client command's frame header; larger reads
// go straight into coder/websocket's own slices.
const readBufferSize = 128

// bufPool holds write buffers of sessions that are writing. A session that is
// not writing holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuffer keeps one burst's huge buffer from staying in the pool.
const maxPooledBuffer = 64 << 10

var errWriterClosed = errors.New("hub: connection write failed earlier")

// frameWriter is the io.Writer coder/websocket writes its frames to (through
// a minimal bufio.Writer, which splits a frame into several Writes). It
// keeps the bytes and writes to the socket only whole frames: at once when
// not batching, or all of them at end() when the session's writer batches
// its queue. It tracks frame boundaries from the frame headers, so a control
// frame written by another goroutine (a pong, a ping, the close frame)
// during a batch is sent whole, in its place in the stream.
type frameWriter struct {
	conn    net.Conn
	rc      syscall.RawConn // for writes that must not wait; nil if conn has none
	timeout time.Duration
	iov     net.Buffers // reused for writev

	mu       sync.Mutex
	batching bool
	buf      *[]byte // nil when nothing is pending
	complete int     // (*buf)[:complete] holds whole frames
	// held mirrors complete > 0 for pending, which the session's writer
	// asks under the session's lock and so must not wait for mu.
	held atomic.Bool
	err  error // the first write error; later writes fail with it
	scan frameScanner
}

func newFrameWriter(conn net.Conn, timeout time.Duration) *frameWriter {
	w := &frameWriter{conn: conn, timeout: timeout}
	if sc, ok := conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w.rc = rc
		}
	}
	return w
}

type tryResult int

const (
	wroteNone tryResult = iota
	wroteAll
	wrotePart // the rest is held, and pending() is true
)

// tryWrite writes a prepared frame if the socket takes it without waiting
// and nothing is held before it. When the socket takes part of it, the rest
// is held for the next write (the frame is the writer's then).
func (w *frameWriter) tryWrite(frame []byte) tryResult {
	// Not Lock: the lock is held through blocking writes (a pong to a client
	// that stopped reading, a writer's backlog), and the fan-out worker
	// calling this serves other sessions too. Busy means queue the frame.
	if !w.mu.TryLock() {
		return wroteNone
	}
	defer w.mu.Unlock()
	if w.rc == nil || w.err != nil || w.buf != nil || w.scan.inFrame() || w.scan.closeSeen {
		return wroteNone
	}
	var n int
	var werr error
	err := w.rc.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), frame)
		return true // one attempt: never wait for the socket
	})
	if err != nil || (werr != nil && !errors.Is(werr, syscall.EAGAIN)) || n <= 0 {
		// A failing socket is the writer's to report.
		return wroteNone
	}
	if n == len(frame) {
		return wroteAll
	}
	w.buf = bufPool.Get().(*[]byte)
	*w.buf = append(*w.buf, frame[n:]...)
	w.setComplete(len(*w.buf))
	return wrotePart
}

// pending reports whether whole frames are held for the next write.
func (w *frameWriter) pending() bool { return w.held.Load() }

func (w *frameWriter) setComplete(n int) {
	w.complete = n
	w.held.Store(n > 0)
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if w.buf == nil {
		w.buf = bufPool.Get().(*[]byte)
	}
	base := len(*w.buf)
	*w.buf = append(*w.buf, p...)
	if end := w.scan.scan(p); end >= 0 {
		w.setComplete(base + end)
	}
	if !w.batching {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// begin holds whole frames back until end.
func (w *frameWriter) begin() {
	w.mu.Lock()
	w.batching = true
	w.mu.Unlock()
}

// end writes the frames held since begin in one write.
func (w *frameWriter) end() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.batching = false
	if w.err != nil {
		return w.err
	}
	return w.flushLocked()
}

// writePrepared writes whole frames, framed already, in one writev, after
// any whole frames held. It reports false, writing nothing, when a frame is
// half-written through coder/websocket (a pong, say): the caller then writes
// through coder/websocket, which waits for that frame to end.
func (w *frameWriter) writePrepared(frames [][]byte) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return true, w.err
	}
	if w.scan.closeSeen {
		// RFC 6455 §5.5.1: nothing after the close frame.
		return true, errWriterClosed
	}
	if w.scan.inFrame() || w.complete != len(w.bufBytes()) {
		return false, nil
	}
	if err := w.armDeadline(); err != nil {
		return true, err
	}
	defer w.clearDeadline()
	iov := w.iov[:0]
	if w.complete > 0 {
		iov = append(iov, (*w.buf)[:w.complete])
	}
	iov = append(iov, frames...)
	w.iov = iov
	_, err := w.iov.WriteTo(w.conn) // consumes w.iov, not iov
	clear(iov)
	if cap(iov) <= 8 {
		w.iov = iov[:0]
	} else {
		w.iov = nil
	}
	if err != nil {
		w.err = fmt.Errorf("%w: %w", errWriterClosed, err)
		return true, w.err
	}
	if w.complete > 0 {
		w.setComplete(0)
		w.releaseLocked()
	}
	return true, nil
}

func (w *frameWriter) bufBytes() []byte {
	if w.buf == nil {
		return nil
	}
	return *w.buf
}

func (w *frameWriter) releaseLocked() {
	b := (*w.buf)[:0]
	*w.buf = b
	if cap(b) <= maxPooledBuffer {
		bufPool.Put(w.buf)
	}
	w.buf = nil
}

// armDeadline bounds a write that may wait for the socket. The deadline is
// cleared after it (clearDeadline): a deadline left set would make the
// non-blocking writes of tryWrite fail with a timeout once it passed, though
// they never wait.
func (w *frameWriter) armDeadline() error {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *frameWriter) clearDeadline() { _ = w.conn.SetWriteDeadline(time.Time{}) }

func (w *frameWriter) flushLocked() error {
	if w.complete == 0 {
		return nil
	}
	b := *w.buf
	if err := w.armDeadline(); err != nil {
		return err
	}
	_, err := w.conn.Write(b[:w.complete])
	w.clearDeadline()
	if err != nil {
		w.err = fmt.Errorf("%w: %w", errWriterClosed, err)
		return w.err
	}
	rest := copy(b, b[w.complete:])
	w.setComplete(0)
	if rest > 0 {
		*w.buf = b[:rest]
		return nil
	}
	w.releaseLocked()
	return nil
}

// frameScanner follows WebSocket frame boundaries (RFC 6455 §5.2) in a byte
// stream written in arbitrary pieces.
type frameScanner struct {
	head      [14]byte
	headLen   int // bytes of the current header seen
	inPayload bool
	remain    int64 // payload bytes still to come
	closeSeen bool  // a close frame's header has gone by
}

// scan consumes p and returns the offset in p just after the last frame that
// p completes, or -1 when p completes none.
func (s *frameScanner) scan(p []byte) int {
	last := -1
	for i := 0; i < len(p); {
		if !s.inPayload {
			s.head[s.headLen] = p[i]
			s.headLen++
			i++
			if s.headLen < headerLen(s.head[:s.headLen]) {
				continue
			}
			s.remain = payloadLen(s.head[:s.headLen])
			if s.head[0]&0x0f == 8 {
				s.closeSeen = true
			}
			s.headLen = 0
			if s.remain == 0 {
				last = i
			} else {
				s.inPayload = true
			}
			continue
		}
		n := min(int64(len(p)-i), s.remain)
		i += int(n)
		s.remain -= n
		if s.remain == 0 {
			s.inPayload = false
			last = i
		}
	}
	return last
}

// inFrame reports whether the scanner is inside a frame.
func (s *frameScanner) inFrame() bool { return s.inPayload || s.headLen > 0 }

// textFrame frames payload as one unmasked text message (RFC 6455 §5.2), as
// a server sends it: a prepared frame, made once and written to every
// session of a room as it is.
func textFrame(payload []byte) []byte {
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = make([]byte, 0, 2+n)
		b = append(b, 0x81, byte(n))
	case n <= 0xffff:
		b = make([]byte, 0, 4+n)
		b = append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = make([]byte, 0, 10+n)
		b = append(b, 0x81, 127)
		for i := 7; i >= 0; i-- {
			b = append(b, byte(uint64(n)>>(8*i)))
		}
	}
	return append(b, payload...)
}

// framePayload returns the payload of a frame made by textFrame.
func framePayload(f []byte) []byte { return f[headerLen(f):] }

// headerLen is the length of the frame header that begins with h, as far as
// h tells (2 until the length byte is known).
func headerLen(h []byte) int {
	if len(h) < 2 {
		return 2
	}
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 {
		n += 4 // masking key
	}
	return n
}

func payloadLen(h []byte) int64 {
	switch l := h[1] & 0x7f; l {
	case 126:
		return int64(h[2])<<8 | int64(h[3])
	case 127:
		var v uint64
		for _, b := range h[2:10] {
			v = v<<8 | uint64(b)
		}
		return int64(v & (1<<63 - 1))
	default:
		return int64(l)
	}
}

// handshakeWriter is the http.ResponseWriter websocket.Accept answers a
// connection taken from its HTTP server through: the 101 goes to the socket
// when Accept hijacks, and a refusal (403 for a foreign Origin, 426 …) is
// written by finish, after which the connection is closed.
type handshakeWriter struct {
	conn     net.Conn
	fw       *frameWriter
	timeout  time.Duration
	header   http.Header
	status   int
	body     []byte
	hijacked bool
}

func (w *handshakeWriter) Header() http.Header { return w.header }

func (w *handshakeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *handshakeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

func (w *handshakeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, errors.New("hub: connection already hijacked")
	}
	w.hijacked = true
	if err := w.writeResponse(nil); err != nil {
		return nil, nil, err
	}
	// bufio's smallest writer: coder/websocket flushes after every frame,
	// and frameWriter does the buffering.
	return w.conn, bufio.NewReadWriter(bufio.NewReaderSize(w.conn, readBufferSize), bufio.NewWriterSize(w.fw, 16)), nil
}

// finish writes a refusal that Accept left in the writer.
func (w *handshakeWriter) finish() {
	if w.hijacked {
		return
	}
	if w.status == 0 {
		w.status = http.StatusInternalServerError
	}
	w.header.Set("Content-Length", strconv.Itoa(len(w.body)))
	w.header.Set("Connection", "close")
	_ = w.writeResponse(w.body)
}

func (w *handshakeWriter) writeResponse(body []byte) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", w.status, http.StatusText(w.status))
	if err := w.header.Write(&b); err != nil {
		return err
	}
	b.WriteString("\r\n")
	b.Write(body)
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	_, err := w.conn.Write(b.Bytes())
	_ = w.conn.SetWriteDeadline(time.Time{})
	return err
}

// refuse answers a connection with an HTTP error and closes it.
func refuse(conn net.Conn, timeout time.Duration, code int, msg string) {
	w := &handshakeWriter{conn: conn, timeout: timeout, header: make(http.Header)}
	http.Error(w, msg, code)
	w.finish()
	conn.Close()
}

// prefixConn reads bytes an HTTP server had already buffered before the
// connection's own.
type prefixConn struct {
	net.Conn
	r io.Reader
}

// PrefixConn returns conn reading early first: bytes of the connection its
// HTTP server had read ahead.
func PrefixConn(conn net.Conn, early []byte) net.Conn {
	if len(early) == 0 {
		return conn
	}
	return &prefixConn{Conn: conn, r: io.MultiReader(bytes.NewReader(early), conn)}
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// SyscallConn lets frameWriter write without waiting; only reads go through
// the prefix.
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("hub: connection has no raw descriptor")
	}
	return sc.SyscallConn()
}
