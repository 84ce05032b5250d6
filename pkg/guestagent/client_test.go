package guestagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeAgent serves the agent protocol on a unix socket, like QEMU's
// chardev does for the real agent; each connection is served by serve.
type fakeAgent struct {
	t      *testing.T
	socket string
	ln     net.Listener
	serve  func(conn net.Conn, lines *bufio.Scanner)

	mu    sync.Mutex
	conns int
}

func newFakeAgent(t *testing.T, serve func(conn net.Conn, lines *bufio.Scanner)) *fakeAgent {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAgent{t: t, socket: socket, ln: ln, serve: serve}
	t.Cleanup(func() { ln.Close() })
	go f.accept()
	return f
}

func (f *fakeAgent) accept() {
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns++
		f.mu.Unlock()
		go func() {
			defer conn.Close()
			lines := bufio.NewScanner(conn)
			f.serve(conn, lines)
		}()
	}
}

func (f *fakeAgent) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// answerAll answers every request with reply.
func answerAll(reply func(Request) Response) func(net.Conn, *bufio.Scanner) {
	return func(conn net.Conn, lines *bufio.Scanner) {
		for lines.Scan() {
			var req Request
			if err := json.Unmarshal(lines.Bytes(), &req); err != nil {
				return
			}
			writeResponse(conn, reply(req))
		}
	}
}

func writeResponse(conn net.Conn, resp Response) {
	b, _ := json.Marshal(resp)
	conn.Write(append(b, '\n'))
}

func result(id uint64, v any) Response {
	b, _ := json.Marshal(v)
	return Response{ID: id, Result: b}
}

func dial(t *testing.T, f *fakeAgent) *Client {
	t.Helper()
	c, err := Dial(context.Background(), f.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientInfo(t *testing.T) {
	f := newFakeAgent(t, answerAll(func(req Request) Response {
		if req.Cmd != CmdInfo {
			return Response{ID: req.ID, Error: "unexpected " + req.Cmd}
		}
		return result(req.ID, Info{BootID: "b1", Heartbeat: 42})
	}))
	info, err := dial(t, f).Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.BootID != "b1" || info.Heartbeat != 42 {
		t.Fatalf("info %+v", info)
	}
}

func TestClientSendsArgs(t *testing.T) {
	var got DiskArgs
	f := newFakeAgent(t, answerAll(func(req Request) Response {
		json.Unmarshal(req.Args, &got)
		return result(req.ID, DiskStatus{Device: "/dev/vdb", Running: true})
	}))
	status, err := dial(t, f).StartDiskWriter(testContext(t), DiskArgs{Disk: "data", SizeMiB: 16, RateMiBps: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Continuous || got.Stop || got.Disk != "data" || got.SizeMiB != 16 || got.RateMiBps != 4 {
		t.Errorf("agent received %+v", got)
	}
	if !status.Running {
		t.Errorf("status %+v", status)
	}
}

func TestClientAgentError(t *testing.T) {
	f := newFakeAgent(t, answerAll(func(req Request) Response {
		return Response{ID: req.ID, Error: "no disk with name or serial \"x\""}
	}))
	_, err := dial(t, f).DiskVerify(testContext(t), DiskArgs{Disk: "x"})
	var agentErr *AgentError
	if !errors.As(err, &agentErr) || agentErr.Cmd != CmdDiskVerify {
		t.Fatalf("error %v (%T), want an AgentError for disk-verify", err, err)
	}
}

func TestClientDiskWriteIsOneShot(t *testing.T) {
	f := newFakeAgent(t, answerAll(func(req Request) Response { return result(req.ID, DiskWriteResult{}) }))
	if _, err := dial(t, f).DiskWrite(testContext(t), DiskArgs{Disk: "vdb", Continuous: true}); err == nil {
		t.Fatal("DiskWrite accepted continuous: true")
	}
}

// TestClientMultiplexes answers two concurrent requests in reverse order,
// with noise a reconnecting host can see: a cut line, a stale reply.
func TestClientMultiplexes(t *testing.T) {
	f := newFakeAgent(t, func(conn net.Conn, lines *bufio.Scanner) {
		var reqs []Request
		for len(reqs) < 2 && lines.Scan() {
			var req Request
			json.Unmarshal(lines.Bytes(), &req)
			reqs = append(reqs, req)
		}
		conn.Write([]byte("ult\":{\"bootID\":\"cut\"}}\n"))
		writeResponse(conn, result(9999, Info{BootID: "stale"}))
		for i := len(reqs) - 1; i >= 0; i-- {
			writeResponse(conn, result(reqs[i].ID, DirtyStatus{RateMiBps: float64(reqs[i].ID)}))
		}
	})
	c := dial(t, f)
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st DirtyStatus
			if err := c.Call(ctx, CmdDirty, DirtyArgs{}, &st); err != nil {
				errs <- err
			} else if st.RateMiBps == 0 {
				errs <- fmt.Errorf("got someone else's reply: %+v", st)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClientTimesOutByContext(t *testing.T) {
	f := newFakeAgent(t, func(conn net.Conn, lines *bufio.Scanner) {
		for lines.Scan() { // never answers
		}
	})
	c := dial(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Dirty(ctx, DirtyArgs{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a deadline", err)
	}
	c.mu.Lock()
	pending := len(c.pending)
	c.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d requests still pending after timing out", pending)
	}
}

// TestClientReconnects drops the first connection on its first request,
// as a QEMU going away mid-call (migration) would.
func TestClientReconnects(t *testing.T) {
	var mu sync.Mutex
	first := true
	f := newFakeAgent(t, func(conn net.Conn, lines *bufio.Scanner) {
		mu.Lock()
		drop := first
		first = false
		mu.Unlock()
		if drop {
			lines.Scan()
			return // closes the connection without answering
		}
		answerAll(func(req Request) Response { return result(req.ID, Info{BootID: "b2"}) })(conn, lines)
	})
	c := dial(t, f)
	ctx := testContext(t)
	if _, err := c.Dirty(ctx, DirtyArgs{}); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("dirty on a dropped connection: %v, want ErrDisconnected", err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.BootID != "b2" {
		t.Fatalf("info after reconnect: %+v, %v", info, err)
	}
	if n := f.connections(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestClientInfoRetriesWhileSocketIsGone: Info keeps trying while the
// socket cannot be reached, as during a switch-over.
func TestClientInfoRetriesWhileSocketIsGone(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(context.Background(), socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	server.Close() // the socket is gone now; Info must wait for the next one

	go func() {
		time.Sleep(300 * time.Millisecond)
		ln2, err := net.Listen("unix", socket)
		if err != nil {
			t.Error(err)
			return
		}
		defer ln2.Close()
		conn, err := ln2.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		answerAll(func(req Request) Response { return result(req.ID, Info{BootID: "back"}) })(conn, bufio.NewScanner(conn))
	}()
	info, err := c.Info(testContext(t))
	if err != nil || info.BootID != "back" {
		t.Fatalf("info: %+v, %v", info, err)
	}
}

func TestClientWaitReady(t *testing.T) {
	var mu sync.Mutex
	ignored := 0
	f := newFakeAgent(t, answerAll(func(req Request) Response {
		mu.Lock()
		defer mu.Unlock()
		if ignored < 1 {
			ignored++
			return Response{ID: 0} // an agent not up yet: no answer for this ID
		}
		return result(req.ID, Info{BootID: "ready"})
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := dial(t, f).WaitReady(ctx)
	if err != nil || info.BootID != "ready" {
		t.Fatalf("WaitReady: %+v, %v", info, err)
	}
}

func TestClientClose(t *testing.T) {
	f := newFakeAgent(t, answerAll(func(req Request) Response { return result(req.ID, Info{}) }))
	c := dial(t, f)
	c.Close()
	if _, err := c.Info(testContext(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}
