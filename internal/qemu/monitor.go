package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Event is an asynchronous QMP event (STOP, RESUME, SHUTDOWN, MIGRATION,
// BLOCK_JOB_READY, ...).
type Event struct {
	Name string
	Data map[string]any
	Time time.Time
}

// Str returns the string field key of the event's data ("" if absent).
func (e Event) Str(key string) string {
	s, _ := e.Data[key].(string)
	return s
}

// QMPError is an error QEMU answered a command with.
type QMPError struct {
	Command string
	Desc    string
}

func (e *QMPError) Error() string { return fmt.Sprintf("QMP %s: %s", e.Command, e.Desc) }

// ErrClosed is returned by calls on an Instance after Close.
var ErrClosed = errors.New("qemu: instance closed (QEMU may still run: use Adopt to drive it again)")

// DefaultCommandTimeout bounds a QMP command whose context has no deadline.
const DefaultCommandTimeout = 30 * time.Second

// monitor is a QMP connection with deadlines. go-qemu's SocketMonitor has
// none: a command QEMU never answers, or a connect while another client
// holds the socket (QEMU serves one client per QMP socket), blocks forever.
// So each call runs in a goroutine, and on timeout the connection is
// dropped; the next command reconnects. Dropping is also the only safe
// recovery: a late answer would otherwise be taken for the next command's.
type monitor struct {
	socket string
	events *broadcaster
	// observe sees every event before subscribers do, in the pump.
	observe func(Event)
	// turn admits one command at a time, and lets a waiting caller give up
	// when its context ends (a mutex would not).
	turn chan struct{}

	mu     sync.Mutex
	conn   *qmp.SocketMonitor // nil while disconnected
	closed bool
}

func newMonitor(socket string, observe func(Event)) *monitor {
	return &monitor{socket: socket, events: newBroadcaster(), observe: observe, turn: make(chan struct{}, 1)}
}

// connect dials the QMP socket and negotiates capabilities; it must hold
// the turn.
func (m *monitor) connect(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.conn != nil {
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	dialTimeout := 2 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		dialTimeout = min(dialTimeout, max(time.Until(deadline), time.Millisecond))
	}
	conn, err := qmp.NewSocketMonitor("unix", m.socket, dialTimeout)
	if err != nil {
		return fmt.Errorf("QMP: connecting to %s: %w", m.socket, err)
	}
	connected := make(chan error, 1)
	go func() { connected <- conn.Connect() }()
	select {
	case err := <-connected:
		if err != nil {
			conn.Disconnect()
			return fmt.Errorf("QMP: handshake on %s: %w", m.socket, err)
		}
	case <-ctx.Done():
		// No greeting: QEMU is hung, or another client holds the socket.
		// Closing the connection ends the handshake. (go-qemu offers no
		// other way; should the greeting arrive at this very moment, its
		// Connect and this Disconnect race on go-qemu's internal state.)
		go conn.Disconnect()
		return fmt.Errorf("QMP: no greeting on %s (is another client connected, or QEMU hung?): %w", m.socket, ctx.Err())
	}
	stream, err := conn.Events(context.Background())
	if err != nil {
		conn.Disconnect()
		return fmt.Errorf("QMP: events on %s: %w", m.socket, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		conn.Disconnect()
		return ErrClosed
	}
	m.conn = conn
	// go-qemu's reader blocks on its unbuffered event channel; draining it
	// here, always, keeps command answers flowing.
	go m.pump(conn, stream)
	return nil
}

// pump forwards the events of one connection until it ends.
func (m *monitor) pump(conn *qmp.SocketMonitor, stream <-chan qmp.Event) {
	for e := range stream {
		event := Event{
			Name: e.Event,
			Data: e.Data,
			Time: time.Unix(e.Timestamp.Seconds, e.Timestamp.Microseconds*1000),
		}
		// Inline, so that what observe records is in place before the answer
		// of any command issued after the event was sent.
		m.observe(event)
		m.events.publish(event)
	}
	m.drop(conn) // EOF: QEMU exited or closed the connection
}

// drop forgets conn if it is still the current connection and closes it.
func (m *monitor) drop(conn *qmp.SocketMonitor) {
	m.mu.Lock()
	current := m.conn == conn
	if current {
		m.conn = nil
	}
	m.mu.Unlock()
	if current {
		// Disconnect waits for go-qemu's reader to end, which needs the pump
		// (possibly the caller) to drain events: never wait for it inline.
		go conn.Disconnect()
	}
}

// execute runs a QMP command and decodes its "return" value into result
// (if not nil).
func (m *monitor) execute(ctx context.Context, command string, args, result any) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	select {
	case m.turn <- struct{}{}:
		defer func() { <-m.turn }()
	case <-ctx.Done():
		return fmt.Errorf("QMP %s: waiting for an earlier command to finish: %w", command, ctx.Err())
	}
	if err := m.connect(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	conn := m.conn
	m.mu.Unlock()
	if conn == nil {
		return fmt.Errorf("QMP %s: connection lost", command)
	}
	request, err := json.Marshal(qmp.Command{Execute: command, Args: args})
	if err != nil {
		return fmt.Errorf("QMP %s: encoding arguments: %w", command, err)
	}
	type answer struct {
		raw []byte
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		raw, err := conn.Run(request)
		answered <- answer{raw, err}
	}()
	select {
	case a := <-answered:
		if a.err != nil {
			if isConnectionError(a.err) {
				m.drop(conn)
				return fmt.Errorf("QMP %s: connection lost (QEMU exited?): %w", command, a.err)
			}
			return &QMPError{Command: command, Desc: a.err.Error()}
		}
		return decodeReturn(command, a.raw, result)
	case <-ctx.Done():
		m.drop(conn)
		return fmt.Errorf("QMP %s: no answer: %w", command, ctx.Err())
	}
}

// isConnectionError tells a broken connection from an error QEMU returned.
// go-qemu returns QEMU's errors as plain errors holding the description;
// a connection that ended yields an empty answer, which fails to decode.
func isConnectionError(err error) bool {
	var syntaxErr *json.SyntaxError
	var opErr *net.OpError
	return errors.As(err, &syntaxErr) || errors.As(err, &opErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

func decodeReturn(command string, raw []byte, result any) error {
	if result == nil {
		return nil
	}
	var envelope struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(raw, &envelope); err != nil {
		return fmt.Errorf("QMP %s: decoding answer: %w", command, err)
	}
	if err := json.Unmarshal(envelope.Return, result); err != nil {
		return fmt.Errorf("QMP %s: decoding answer %s: %w", command, envelope.Return, err)
	}
	return nil
}

// close drops the connection for good.
func (m *monitor) close() {
	m.mu.Lock()
	m.closed = true
	conn := m.conn
	m.conn = nil
	m.mu.Unlock()
	if conn != nil {
		go conn.Disconnect()
	}
	m.events.closeAll()
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultCommandTimeout)
}

// broadcaster hands each event to every subscriber. A subscriber that does
// not keep up loses events rather than stalling QMP; waits in this package
// therefore also poll the state they wait for.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[int]chan Event
	next   int
	closed bool
}

func newBroadcaster() *broadcaster { return &broadcaster{subs: map[int]chan Event{}} }

// eventBuffer is how many events a subscriber may lag behind.
const eventBuffer = 256

func (b *broadcaster) subscribe() (<-chan Event, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan Event, eventBuffer)
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	id := b.next
	b.next++
	b.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if sub, ok := b.subs[id]; ok {
				delete(b.subs, id)
				close(sub)
			}
		})
	}
}

func (b *broadcaster) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.subs {
		select {
		case ch <- e:
		default: // slow subscriber: drop rather than block QMP
		}
	}
}

func (b *broadcaster) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for id, ch := range b.subs {
		delete(b.subs, id)
		close(ch)
	}
}
