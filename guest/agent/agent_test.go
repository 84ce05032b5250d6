package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

func testLogger(t *testing.T) *log.Logger {
	return log.New(testWriter{t}, "", 0)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testAgent(t *testing.T) *agent {
	t.Helper()
	a, err := newAgent(testLogger(t))
	if err != nil {
		t.Fatal(err) // needs /proc/sys/kernel/random/boot_id: Linux
	}
	return a
}

func request(t *testing.T, a *agent, line string) guestagent.Response {
	t.Helper()
	return a.handle([]byte(line))
}

func TestHandleInfo(t *testing.T) {
	a := testAgent(t)
	resp := request(t, a, `{"id":7,"cmd":"info"}`)
	var info guestagent.Info
	if resp.ID != 7 || resp.Error != "" || json.Unmarshal(resp.Result, &info) != nil {
		t.Fatalf("response %+v", resp)
	}
	if info.BootID != a.bootID || info.MemoryBytes == 0 || info.UptimeSeconds <= 0 || info.ProtocolVersion != guestagent.ProtocolVersion {
		t.Errorf("info %+v", info)
	}
}

func TestHandleErrors(t *testing.T) {
	a := testAgent(t)
	tests := []struct{ line, want string }{
		{`not json`, "bad request line"},
		{`{"id":1,"cmd":"reboot"}`, "unknown command"},
		{`{"id":2,"cmd":"dirty","args":{"rate":5}}`, "unknown field"},
		{`{"id":3,"cmd":"dirty","args":{"rateMiBps":-1}}`, "must not be negative"},
		{`{"id":4,"cmd":"disk-write","args":{}}`, "no disk given"},
	}
	for _, tt := range tests {
		if resp := request(t, a, tt.line); !strings.Contains(resp.Error, tt.want) {
			t.Errorf("%s: error %q, want %q", tt.line, resp.Error, tt.want)
		}
	}
}

func TestFindPort(t *testing.T) {
	dir := t.TempDir()
	for port, name := range map[string]string{"vport0p0": "org.qemu.guest_agent.0", "vport1p1": guestagent.PortName} {
		os.MkdirAll(filepath.Join(dir, port), 0o755)
		os.WriteFile(filepath.Join(dir, port, "name"), []byte(name+"\n"), 0o644)
	}
	if got, err := findPort(dir, guestagent.PortName); err != nil || got != "/dev/vport1p1" {
		t.Fatalf("findPort: %q, %v", got, err)
	}
	if _, err := findPort(dir, "org.example.none"); err == nil {
		t.Fatal("found a port that is not there")
	}
}

// scriptedPort plays what a virtio-serial port gives the agent: data, EOF
// while no host is connected, and data again.
type scriptedPort struct {
	mu    sync.Mutex
	steps []step
}

type step struct {
	data string
	err  error
}

func (p *scriptedPort) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.steps) == 0 {
		return 0, errors.New("script over")
	}
	s := p.steps[0]
	p.steps = p.steps[1:]
	return copy(b, s.data), s.err
}

type lineCollector struct {
	mu    sync.Mutex
	lines []string
}

func (c *lineCollector) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, strings.TrimSpace(string(b)))
	return len(b), nil
}

func (c *lineCollector) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := append([]string(nil), c.lines...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fewer than %d replies", n)
	return nil
}

// TestServeLinesAcrossHostReconnect: a request cut by the host going away
// is dropped with the EOF; requests before and after are answered.
func TestServeLinesAcrossHostReconnect(t *testing.T) {
	port := &scriptedPort{steps: []step{
		{data: `{"id":1,"cmd":"echo-me"}` + "\n"},
		{data: `{"id":2,"cmd":"ech`},
		{err: io.EOF}, // host disconnected mid-line
		{err: io.EOF},
		{data: "\n"},
		{data: `{"id":3,"cmd":"echo-me"}` + "\n" + "junk\n"},
	}}
	replies := &lineCollector{}
	handle := func(line []byte) guestagent.Response {
		var req guestagent.Request
		if err := json.Unmarshal(line, &req); err != nil {
			return guestagent.Response{Error: "bad request line"}
		}
		return guestagent.Response{ID: req.ID, Result: json.RawMessage(`"` + req.Cmd + `"`)}
	}
	err := serveLines(port, &replyWriter{port: replies, log: testLogger(t)}, handle, time.Millisecond)
	if err == nil || err.Error() != "script over" {
		t.Fatalf("serveLines ended with %v", err)
	}
	got := strings.Join(replies.wait(t, 3), "\n")
	for _, want := range []string{`{"id":1,"result":"echo-me"}`, `{"id":3,"result":"echo-me"}`, `{"id":0,"error":"bad request line"}`} {
		if !strings.Contains(got, want) {
			t.Errorf("replies %s lack %s", got, want)
		}
	}
	if strings.Contains(got, `"id":2`) {
		t.Errorf("the cut request was answered: %s", got)
	}
}

func TestReadLineTooLong(t *testing.T) {
	long := strings.Repeat("x", maxRequestBytes+10)
	r := bufio.NewReaderSize(strings.NewReader(long+"\n"+`{"id":1}`+"\n"), 64<<10)
	if _, err := readLine(r); !errors.Is(err, errLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	if line, err := readLine(r); err != nil || string(line) != `{"id":1}` {
		t.Fatalf("line after the long one: %q, %v", line, err)
	}
}

func TestEcho(t *testing.T) {
	e := &echoServer{bootID: "boot-1", log: testLogger(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.serveListener(ctx, ln)
	for session := 0; session < 2; session++ { // the counter is per connection
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		for i, msg := range []string{"a", "b c"} {
			conn.Write([]byte(msg + "\n"))
			line, err := r.ReadString('\n')
			if want := []string{"1 boot-1 a\n", "2 boot-1 b c\n"}[i]; err != nil || line != want {
				t.Fatalf("session %d: %q, %v; want %q", session, line, err, want)
			}
		}
		if n := e.conns.Load(); n != 1 {
			t.Errorf("%d connections counted, want 1", n)
		}
		conn.Close()
		for deadline := time.Now().Add(2 * time.Second); e.conns.Load() != 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestCountStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "starts")
	for want := 0; want < 3; want++ {
		if got := countStart(path); got != want {
			t.Fatalf("start %d: %d earlier starts", want, got)
		}
	}
}
