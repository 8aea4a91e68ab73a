//go:build linux

package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"github.com/gobwas/ws"
)

// The receive path. A goroutine per session blocked in Read costs Go's
// netpoller a wake-up and two read system calls per frame (one that gets it,
// one that gets EAGAIN and parks the goroutine), about 6 µs of CPU per frame
// taken from the server being measured. Once a session is subscribed, its
// socket leaves the netpoller instead: the session keeps a duplicate of the
// descriptor and closes its net.Conn. A few readers (one per CPU, at most
// maxReaders) each have an epoll instance of their own with their sessions'
// sockets, edge-triggered; the reader's goroutine waits for that instance in
// the netpoller (an epoll descriptor is readable while it has ready
// sockets), then takes a batch of ready sockets with one epoll_wait, reads
// each once into its scratch buffer and parses the complete frames
// (wsframe.go). A socket whose read filled the buffer may hold more, and is
// read again before the reader waits; a frame's tail that has not arrived
// stays with its session. A frame is timed when it is parsed after the read
// that completed it, as it was when a goroutine per session read it. A
// session the server closes leaves its reader for a goroutine of its own
// that reconnects, as before, and is handed back.
//
// Waiting in the netpoller rather than in epoll_wait on a locked thread:
// two threads blocking in a system call with a P each keep sysmon retaking
// Ps every 20 µs, which cost as much as the system calls saved.

const (
	// maxReaders bounds the readers: the load generator shares the machine
	// with the server it measures.
	maxReaders = 2
	// scratchSize is a reader's read buffer: every read of its sessions
	// goes there, and only the tail of a frame that has not fully arrived
	// is kept by the session, so a session holds no buffer between frames.
	scratchSize = 16 << 10
	// epollBatch is how many ready sockets one epoll_wait returns at most.
	epollBatch = 512
	// epollET is EPOLLET as the uint32 of syscall.EpollEvent.
	epollET = syscall.EPOLLET & 0xffffffff
)

// readerCount is how many readers a hub client starts.
func readerCount() int { return max(1, min(runtime.GOMAXPROCS(0), maxReaders)) }

// errReaderStopped: a session could not be handed to its reader, which has
// stopped.
var errReaderStopped = errors.New("the session's reader has stopped")

// reader serves the sessions registered with its epoll instance.
type reader struct {
	c    *hubClient
	ep   *os.File // the epoll instance, in the netpoller
	epfd int
	wake [2]int // a pipe: a byte on it makes the reader close everything and return

	mu       sync.Mutex
	stopping bool       // stop was called: no more sessions
	byFD     []*session // registered sessions by descriptor

	events  []syscall.EpollEvent
	ready   []*session
	more    []*session // sessions whose last read filled the buffer
	scratch []byte
}

func newReader(c *hubClient) (*reader, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	r := &reader{c: c, epfd: epfd, events: make([]syscall.EpollEvent, epollBatch), scratch: make([]byte, scratchSize)}
	if err := syscall.Pipe2(r.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	fail := func(err error) (*reader, error) {
		_ = syscall.Close(r.wake[0])
		_ = syscall.Close(r.wake[1])
		_ = syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(r.wake[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, r.wake[0], &ev); err != nil {
		return fail(fmt.Errorf("epoll_ctl: %w", err))
	}
	// Non-blocking, os.NewFile puts the epoll descriptor in the netpoller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return fail(err)
	}
	r.ep = os.NewFile(uintptr(epfd), "epoll")
	return r, nil
}

// add hands a session to the reader, which owns its descriptor from then on.
// After stop, the descriptor is closed instead.
func (r *reader) add(s *session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		s.closeFD()
		return errReaderStopped
	}
	if s.fd >= len(r.byFD) {
		r.byFD = append(r.byFD, make([]*session, s.fd+1-len(r.byFD)+len(r.byFD)/2)...)
	}
	// Added under the lock, so that the reader, which takes the lock to look
	// the descriptor up once epoll reports it, sees the session as written.
	// A socket that already has data is reported at once.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(s.fd)}
	if err := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
		s.closeFD()
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	r.byFD[s.fd] = s
	return nil
}

// stop makes the reader close its sessions and return.
func (r *reader) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopping {
		r.stopping = true
		_, _ = syscall.Write(r.wake[1], []byte{0})
	}
}

// run is the reader's loop: it waits in the netpoller until its epoll
// instance has ready sockets, and serves them until it has none.
func (r *reader) run() {
	defer r.c.wg.Done()
	rc, err := r.ep.SyscallConn()
	if err == nil {
		err = rc.Read(func(uintptr) bool {
			for {
				n, stop := r.poll()
				if stop {
					return true
				}
				// A batch that did not fill the events, and no socket to
				// read again: everything ready was read, and what arrives
				// from now on makes the epoll descriptor readable.
				if n < len(r.events) && len(r.more) == 0 {
					return false
				}
			}
		})
	}
	if err != nil {
		r.c.noteError(fmt.Errorf("reader: %w", err))
	}
	r.closeAll()
}

// poll reads each ready session once; stop is true when the reader was
// stopped (or failed).
func (r *reader) poll() (n int, stop bool) {
	n, err := syscall.EpollWait(r.epfd, r.events, 0)
	if err != nil {
		if err == syscall.EINTR {
			return len(r.events), false // try again
		}
		r.c.noteError(fmt.Errorf("epoll_wait: %w", err))
		return 0, true
	}
	r.ready = r.ready[:0]
	r.mu.Lock()
	for _, ev := range r.events[:n] {
		fd := int(ev.Fd)
		switch {
		case fd == r.wake[0]:
			stop = true
		case fd < len(r.byFD) && r.byFD[fd] != nil && !r.byFD[fd].more:
			r.ready = append(r.ready, r.byFD[fd])
		}
	}
	r.mu.Unlock()
	if stop {
		return n, true
	}
	// The sessions whose last read filled the buffer: epoll, edge-triggered,
	// reports them again only when more arrives, so they are read again
	// before the reader waits.
	r.ready = append(r.ready, r.more...)
	r.more = r.more[:0]
	for _, s := range r.ready {
		s.more = false
		more, err := s.readOnce(r.scratch)
		switch {
		case err != nil:
			r.drop(s, err)
		case more:
			s.more = true
			r.more = append(r.more, s)
		}
	}
	return n, false
}

// drop takes a session the server closed (or whose connection failed) out
// of the reader and starts its reconnection.
func (r *reader) drop(s *session, err error) {
	r.mu.Lock()
	_ = syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
	r.byFD[s.fd] = nil
	s.closeFD()
	r.mu.Unlock()
	r.c.wg.Add(1)
	go func() {
		defer r.c.wg.Done()
		s.recover(err)
	}()
}

// closeAll closes the reader's sessions and its own descriptors, once its
// loop has returned.
func (r *reader) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopping = true
	for fd, s := range r.byFD {
		if s != nil {
			s.closeFD()
			r.byFD[fd] = nil
		}
	}
	_ = r.ep.Close()
	_ = syscall.Close(r.wake[0])
	_ = syscall.Close(r.wake[1])
}

// detach takes a subscribed session's socket out of Go's netpoller: the
// session keeps a duplicate of its descriptor (non-blocking, as Go made it)
// and closes conn, and what the handshake's buffered readers hold past
// "subscribed" becomes the session's pending bytes, parsed by start.
func (s *session) detach(conn net.Conn, bufs ...*bufio.Reader) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no descriptor to read from", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var dupErr error
	err = rc.Control(func(f uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			dupErr = fmt.Errorf("dup: %w", e)
			return
		}
		fd = int(r)
	})
	if err == nil {
		err = dupErr
	}
	if err != nil {
		return err
	}
	// The duplicate shares the open file, already non-blocking; make sure.
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return err
	}
	var pending [][]byte
	for _, br := range bufs {
		if br != nil {
			b, _ := br.Peek(br.Buffered())
			pending = append(pending, b)
		}
	}
	s.rx.reset(pending...)
	s.connMu.Lock()
	// Closing the net.Conn takes the descriptor out of the netpoller; the
	// socket stays open through the duplicate.
	_ = conn.Close()
	s.conn = nil
	s.fd = fd
	s.connMu.Unlock()
	return nil
}

func (s *session) closeFD() {
	if s.fd >= 0 {
		_ = syscall.Close(s.fd)
		s.fd = -1
	}
}

// start runs on the goroutine that connected the session: it parses what
// arrived with the handshake and hands the session to its reader. An error
// is the end of the session's connection, whose descriptor is closed.
func (s *session) start() error {
	if len(s.rx.pend) > 0 {
		if err := s.rx.consume(s.rx.pend, s); err != nil {
			s.closeFD()
			return err
		}
	}
	return s.c.readers[s.shard%len(s.c.readers)].add(s)
}

// recover runs on a goroutine of its own after the session's connection
// ended with err: it reconnects, recovering what was missed, and hands the
// session to its reader again.
func (s *session) recover(err error) {
	ctx := s.c.ctx
	for {
		if s.c.stopping.Load() || ctx.Err() != nil {
			return
		}
		if errors.Is(err, errReaderStopped) {
			// Its reader failed (and said why): reconnecting cannot help.
			s.c.gaveUp.Add(1)
			return
		}
		var ce *closeError
		switch {
		case errors.As(err, &ce):
			s.c.noteClose(strconv.Itoa(int(ce.code)))
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			s.c.noteClose("EOF")
		default:
			s.c.noteClose("error")
			s.c.noteError(err)
		}
		if !s.reconnect(ctx) {
			s.c.gaveUp.Add(1)
			return
		}
		if err = s.start(); err == nil {
			return
		}
	}
}

// readOnce reads what the session's socket has, once, and parses it. more
// says the read filled the buffer, so the socket may hold more; err, why the
// connection ended.
func (s *session) readOnce(scratch []byte) (more bool, err error) {
	buf, off := s.rx.buffer(scratch)
	n, err := readFD(s.fd, buf[off:])
	switch {
	case err == syscall.EAGAIN:
		return false, nil // nothing after all
	case err == syscall.EINTR:
		return true, nil // read again
	case err != nil:
		return false, &net.OpError{Op: "read", Net: "tcp", Err: err}
	case n == 0:
		if off > 0 {
			return false, io.ErrUnexpectedEOF
		}
		return false, io.EOF
	}
	return off+n == len(buf), s.rx.consume(buf[:off+n], s)
}

// readFD is read(2) on a non-blocking descriptor, which never blocks, so
// without telling the scheduler about a system call.
func readFD(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// recvState is a session's receive state between reads: the bytes of a
// frame not yet complete, how many the frame takes (0: its header is
// incomplete), and a fragmented message being put together.
type recvState struct {
	pend   []byte
	need   int
	parser wsParser
}

// reset starts a new connection, with the bytes already read after its
// handshake.
func (rx *recvState) reset(pending ...[]byte) {
	rx.pend = rx.pend[:0]
	for _, b := range pending {
		rx.pend = append(rx.pend, b...)
	}
	rx.need = 0
	rx.parser.reset()
}

// buffer returns where the next read goes: buf[off:], after the off pending
// bytes copied to buf[:off]. That is the reader's scratch buffer, unless the
// frame under way is larger: then it is the session's own, grown to hold it.
func (rx *recvState) buffer(scratch []byte) (buf []byte, off int) {
	switch {
	case len(rx.pend) == 0:
		return scratch, 0
	case rx.need <= len(scratch) && len(rx.pend) < len(scratch):
		return scratch, copy(scratch, rx.pend)
	}
	if want := max(rx.need, len(rx.pend)+ws.MaxHeaderSize); cap(rx.pend) < want {
		rx.pend = append(make([]byte, 0, want), rx.pend...)
	}
	return rx.pend[:cap(rx.pend)], len(rx.pend)
}

// frameSink handles the frames of a connection: the session, or a test.
type frameSink interface {
	message(msg []byte)
	ping(payload []byte) error
	close(payload []byte) error // returns why the connection ended
}

// consume parses the frames in data (which may be rx.pend itself), hands
// them to sink, and keeps the incomplete tail in rx.pend. An error ends the
// connection.
func (rx *recvState) consume(data []byte, sink frameSink) error {
	off := 0
	for {
		kind, payload, n, need, err := rx.parser.next(data[off:])
		if err != nil {
			return err
		}
		if n == 0 {
			rx.need = need
			break
		}
		off += n
		switch kind {
		case frameMessage:
			sink.message(payload)
		case framePing:
			if err := sink.ping(payload); err != nil {
				return err
			}
		case frameClose:
			return sink.close(payload)
		}
	}
	switch rest := data[off:]; {
	case len(rest) == 0:
		rx.pend = rx.pend[:0]
		if cap(rx.pend) > readBufSize {
			rx.pend = nil // a large frame's buffer
		}
	case off == 0 && cap(rx.pend) > 0 && &rx.pend[:1][0] == &data[0]:
		rx.pend = data // a large frame, read into place
	default:
		rx.pend = append(rx.pend[:0], rest...)
	}
	return nil
}

func (s *session) message(msg []byte) { s.handle(msg) }

func (s *session) ping(payload []byte) error { return s.writeRaw(ws.OpPong, payload) }

func (s *session) close(payload []byte) error {
	code, reason := ws.ParseCloseFrameData(payload)
	// Echo the close (RFC 6455 §5.5.1); the connection is done either way.
	_ = s.writeRaw(ws.OpClose, ws.NewCloseFrameBody(code, ""))
	return &closeError{code: code, reason: reason}
}

// writeRaw writes one masked control frame on the session's descriptor. A
// socket whose send buffer is full (the server reads nothing from it) fails
// the connection rather than block the reader's other sessions.
func (s *session) writeRaw(op ws.OpCode, payload []byte) error {
	var buf [maxClientFrame]byte
	f := appendClientFrame(buf[:0], op, payload)
	for len(f) > 0 {
		n, err := syscall.Write(s.fd, f)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return &net.OpError{Op: "write", Net: "tcp", Err: err}
		}
		f = f[n:]
	}
	return nil
}
