package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

// virtioPortsDir is where the kernel lists virtio-serial ports; each has a
// "name" file with the name QEMU gave it. There is no udev in the guest to
// make /dev/virtio-ports/NAME links, so the agent looks the name up here.
const virtioPortsDir = "/sys/class/virtio-ports"

const (
	// hostAbsentPoll is how often the agent re-reads the port while no
	// host is connected: virtio_console then returns EOF at once (and
	// poll reports HUP), so there is nothing to block on.
	hostAbsentPoll = 100 * time.Millisecond
	// reopenDelay paces retries when the port is missing or broken.
	reopenDelay = time.Second
	// responseWriteTimeout bounds a reply write: writes block while the
	// host is away, and a reply nobody reads must not hold up the others.
	responseWriteTimeout = 5 * time.Second
	maxRequestBytes      = 1 << 20
)

// portServer serves the agent protocol on the virtio-serial port.
type portServer struct {
	agent    *agent
	log      *log.Logger
	name     string // port name, looked up in classDir
	path     string // explicit device path, if set
	classDir string
}

// serveForever keeps the port open and served, across host disconnects
// (migration, host agent restart) and port errors, until ctx ends.
func (s portServer) serveForever(ctx context.Context) {
	var lastProblem string
	for ctx.Err() == nil {
		err := s.openAndServe(ctx)
		// Log changes only: a missing port would otherwise log every second.
		if problem := fmt.Sprint(err); problem != lastProblem {
			s.log.Printf("virtio port %s: %v; retrying", s.name, err)
			lastProblem = problem
		}
		sleepCtx(ctx, reopenDelay)
	}
}

func (s portServer) openAndServe(ctx context.Context) error {
	path := s.path
	if path == "" {
		var err error
		if path, err = findPort(s.classDir, s.name); err != nil {
			return err
		}
	}
	port, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer port.Close()
	s.log.Printf("serving %s on %s", s.name, path)
	stop := context.AfterFunc(ctx, func() { port.Close() })
	defer stop()
	return serveLines(port, &replyWriter{port: port, log: s.log}, s.agent.handle, hostAbsentPoll)
}

// findPort returns the /dev path of the virtio-serial port called name.
func findPort(classDir, name string) (string, error) {
	nameFiles, err := filepath.Glob(filepath.Join(classDir, "*", "name"))
	if err != nil {
		return "", err
	}
	for _, nameFile := range nameFiles {
		b, err := os.ReadFile(nameFile)
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(nameFile)), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q in %s (is -device virtserialport,name=%s on the QEMU command line?)", name, classDir, name)
}

// serveLines reads request lines from r and answers each in its own
// goroutine, so a long disk-write does not hold up an info. EOF means the
// host side is not connected: the partial line it may have left is
// dropped and reading goes on after a pause. Any other error is returned.
func serveLines(r io.Reader, w *replyWriter, handle func([]byte) guestagent.Response, eofPause time.Duration) error {
	reader := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(reader)
		switch {
		case errors.Is(err, io.EOF):
			time.Sleep(eofPause)
			continue
		case errors.Is(err, errLineTooLong):
			w.send(guestagent.Response{Error: err.Error()})
			continue
		case err != nil:
			return err
		}
		if len(line) == 0 {
			continue
		}
		go func() { w.send(handle(line)) }()
	}
}

var errLineTooLong = fmt.Errorf("request line longer than %d bytes, dropped", maxRequestBytes)

// readLine returns the next complete line, trimmed. A line longer than
// maxRequestBytes is consumed and reported as errLineTooLong.
func readLine(reader *bufio.Reader) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := reader.ReadSlice('\n')
		if !tooLong {
			line = append(line, chunk...)
			tooLong = len(line) > maxRequestBytes
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			return nil, err // a partial line before EOF is dropped with it
		case tooLong:
			return nil, errLineTooLong
		}
		return bytes.TrimSpace(line), nil
	}
}

// replyWriter writes whole response lines, one at a time.
type replyWriter struct {
	mu   sync.Mutex
	port io.Writer
	log  *log.Logger
}

// send writes one response; a failure only loses this reply (the host
// retries or has gone), so it is logged and not returned.
func (w *replyWriter) send(resp guestagent.Response) {
	line, err := json.Marshal(resp)
	if err != nil {
		w.log.Printf("encoding reply %d: %v", resp.ID, err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if f, ok := w.port.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = f.SetWriteDeadline(time.Now().Add(responseWriteTimeout))
	}
	if _, err := w.port.Write(append(line, '\n')); err != nil {
		w.log.Printf("reply %d not delivered: %v", resp.ID, err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
