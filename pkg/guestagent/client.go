package guestagent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrDisconnected reports that the connection to the agent socket broke
// while a request was outstanding (QEMU exited, the VM migrated, the socket
// was reset). The next call redials.
var ErrDisconnected = errors.New("guestagent: connection to the agent socket was lost")

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("guestagent: client closed")

// AgentError is an error the agent itself returned for a request.
type AgentError struct {
	Cmd     string
	Message string
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("guest agent %s: %s", e.Cmd, e.Message)
}

// DefaultTimeout bounds a request whose context has no deadline, so that a
// call cannot hang forever on a guest that never answers: a request the
// agent had received when it died is never answered, and the socket to
// QEMU does not break for it.
const DefaultTimeout = 30 * time.Second

// maxLineBytes bounds one response line; results are a few KiB at most.
const maxLineBytes = 4 << 20

// reply is what a waiting call receives: the agent's response, or the
// local error that ended the wait (connection lost, client closed).
type reply struct {
	resp Response
	err  error
}

// Client talks to one guest agent through its QEMU chardev socket. It is
// safe for concurrent use; requests are multiplexed by ID. QEMU accepts one
// client per chardev socket at a time, so use one Client per VM.
type Client struct {
	dial   func(ctx context.Context) (net.Conn, error)
	nextID atomic.Uint64

	mu      sync.Mutex
	conn    net.Conn // nil while disconnected
	pending map[uint64]chan reply
	closed  bool

	writeMu sync.Mutex // one request line at a time on conn
}

// Dial connects to the agent socket at socketPath (the path of the QEMU
// chardev). It does not wait for the agent to answer: see WaitReady.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	return DialFunc(ctx, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socketPath)
	})
}

// DialFunc is Dial with a custom connection factory, called again on each
// reconnect (for example to reach a socket inside a network namespace).
func DialFunc(ctx context.Context, dial func(ctx context.Context) (net.Conn, error)) (*Client, error) {
	c := &Client{dial: dial, pending: map[uint64]chan reply{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.connectLocked(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Close closes the connection; outstanding calls fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.failPendingLocked(ErrClosed)
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// infoAttemptTimeout bounds one info request inside Info's retries. A
// request can be lost without the socket noticing (the agent restarted
// after QEMU handed it the request), and info answers in milliseconds, so
// an attempt without an answer is retried rather than waited on.
const infoAttemptTimeout = 5 * time.Second

// Info returns the guest's state. It is read-only, so it is retried, across
// reconnects and lost requests, until ctx (or DefaultTimeout) ends.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	return c.retryInfo(ctx, infoAttemptTimeout)
}

// WaitReady waits until the agent answers, for a VM that is still booting
// or a socket that is not there yet, and returns its first Info. Only ctx
// bounds the wait.
func (c *Client) WaitReady(ctx context.Context) (*Info, error) {
	info, err := c.retryInfo(ctx, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("waiting for the guest agent to answer: %w", err)
	}
	return info, nil
}

// retryInfo sends info, each attempt bounded by attemptTimeout, until an
// answer, an error from the agent itself, or the end of ctx.
func (c *Client) retryInfo(ctx context.Context, attemptTimeout time.Duration) (*Info, error) {
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, attemptTimeout)
		info, err := call[Info](attemptCtx, c, CmdInfo, struct{}{})
		cancel()
		var agentErr *AgentError
		switch {
		case err == nil:
			return info, nil
		case errors.As(err, &agentErr), errors.Is(err, ErrClosed):
			return nil, err
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// Dirty starts (RateMiBps > 0) or stops (RateMiBps == 0) the guest's
// memory-dirtying workload.
func (c *Client) Dirty(ctx context.Context, args DirtyArgs) (*DirtyStatus, error) {
	return call[DirtyStatus](ctx, c, CmdDirty, args)
}

// DiskWrite writes the whole region once and returns when it is durable.
func (c *Client) DiskWrite(ctx context.Context, args DiskArgs) (*DiskWriteResult, error) {
	if args.Continuous || args.Stop {
		return nil, errors.New("guestagent: DiskWrite is one-shot; use StartDiskWriter or StopDiskWriter")
	}
	return call[DiskWriteResult](ctx, c, CmdDiskWrite, args)
}

// StartDiskWriter starts the continuous background writer on args.Disk.
// Its progress, including what it has acknowledged (DiskStatus.Ack), is
// reported in Info().Disks.
func (c *Client) StartDiskWriter(ctx context.Context, args DiskArgs) (*DiskStatus, error) {
	args.Continuous, args.Stop = true, false
	return call[DiskStatus](ctx, c, CmdDiskWrite, args)
}

// StopDiskWriter stops the continuous writer on disk and returns its final
// status, whose Ack() is what to verify against.
func (c *Client) StopDiskWriter(ctx context.Context, disk string) (*DiskStatus, error) {
	return call[DiskStatus](ctx, c, CmdDiskWrite, DiskArgs{Disk: disk, Stop: true})
}

// DiskVerify reads the region back and checks every block.
func (c *Client) DiskVerify(ctx context.Context, args DiskArgs) (*DiskVerifyResult, error) {
	return call[DiskVerifyResult](ctx, c, CmdDiskVerify, args)
}

// Shutdown asks the guest to sync its disks and power off; it returns once
// the agent accepted, before the guest is down.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.Call(ctx, CmdShutdown, nil, nil)
}

// Call sends any command and decodes its result into result (if non-nil).
func (c *Client) Call(ctx context.Context, cmd string, args, result any) error {
	raw, err := c.roundTrip(ctx, cmd, args)
	if err != nil || result == nil {
		return err
	}
	if err := json.Unmarshal(raw, result); err != nil {
		return fmt.Errorf("guest agent %s: decoding result: %w", cmd, err)
	}
	return nil
}

func call[T any](ctx context.Context, c *Client, cmd string, args any) (*T, error) {
	var result T
	if err := c.Call(ctx, cmd, args, &result); err != nil {
		return nil, err
	}
	return &result, nil
}

func (c *Client) roundTrip(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	line, id, err := c.encodeRequest(cmd, args)
	if err != nil {
		return nil, err
	}
	conn, replies, err := c.register(ctx, id)
	if err != nil {
		return nil, err
	}
	defer c.unregister(id)
	if err := c.writeLine(ctx, conn, line); err != nil {
		c.dropConn(conn)
		return nil, fmt.Errorf("guest agent %s: sending request: %w: %v", cmd, ErrDisconnected, err)
	}
	select {
	case r := <-replies:
		if r.err != nil {
			return nil, fmt.Errorf("guest agent %s: %w", cmd, r.err)
		}
		if r.resp.Error != "" {
			return nil, &AgentError{Cmd: cmd, Message: r.resp.Error}
		}
		return r.resp.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("guest agent %s: no reply: %w", cmd, ctx.Err())
	}
}

func (c *Client) encodeRequest(cmd string, args any) ([]byte, uint64, error) {
	rawArgs, err := json.Marshal(args)
	if err != nil {
		return nil, 0, fmt.Errorf("guest agent %s: encoding args: %w", cmd, err)
	}
	id := c.nextID.Add(1)
	line, err := json.Marshal(Request{ID: id, Cmd: cmd, Args: rawArgs})
	if err != nil {
		return nil, 0, err
	}
	return append(line, '\n'), id, nil
}

// register makes sure a connection exists and records id as awaiting a
// reply on it.
func (c *Client) register(ctx context.Context, id uint64) (net.Conn, chan reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, ErrClosed
	}
	conn, err := c.connectLocked(ctx)
	if err != nil {
		return nil, nil, err
	}
	replies := make(chan reply, 1)
	c.pending[id] = replies
	return conn, replies, nil
}

func (c *Client) unregister(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Client) connectLocked(ctx context.Context) (net.Conn, error) {
	if c.conn != nil {
		return c.conn, nil
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("guest agent: connecting to the agent socket: %w", err)
	}
	c.conn = conn
	go c.readReplies(conn)
	return conn, nil
}

func (c *Client) writeLine(ctx context.Context, conn net.Conn, line []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	deadline, _ := ctx.Deadline()
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := conn.Write(line)
	return err
}

// readReplies delivers replies from conn until it breaks. Lines that are
// not JSON, and replies nobody waits for, are dropped: they are leftovers
// of an earlier connection (see the package comment).
func (c *Client) readReplies(conn net.Conn) {
	scanner := bufio.NewScanner(conn)
	scanner.Buffer(make([]byte, 64<<10), maxLineBytes)
	for scanner.Scan() {
		var resp Response
		if err := json.Unmarshal(bytes.TrimSpace(scanner.Bytes()), &resp); err != nil || resp.ID == 0 {
			continue
		}
		c.deliver(resp)
	}
	c.dropConn(conn)
}

func (c *Client) deliver(resp Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if replies, ok := c.pending[resp.ID]; ok {
		delete(c.pending, resp.ID)
		replies <- reply{resp: resp} // buffered, and each ID is delivered once
	}
}

// dropConn forgets conn if it is still the current connection and fails
// the requests waiting on it; the next call redials.
func (c *Client) dropConn(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != conn {
		return
	}
	conn.Close()
	c.conn = nil
	c.failPendingLocked(ErrDisconnected)
}

func (c *Client) failPendingLocked(err error) {
	for id, replies := range c.pending {
		delete(c.pending, id)
		replies <- reply{err: err}
	}
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
