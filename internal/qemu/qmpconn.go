package qemu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// qmpConn is one QMP connection. It replaces go-qemu's SocketMonitor,
// whose reader has two open bugs that give a command another command's
// answer: it hands out bufio.Scanner.Bytes(), which the next line
// overwrites while the caller still decodes it (digitalocean/go-qemu#226),
// and its handshake takes an event QEMU sends before the answer to
// qmp_capabilities for that answer, so that every later command gets the
// answer of the one before it (go-qemu#210). Both were seen here: a
// node agent's object-add got the answer of its object-del ("object
// 'cclm-tls-server' not found") on a connection made while QEMU was
// emitting migration events. go-qemu's Command and Event types are kept.
//
// One reader owns the socket: every line is a greeting, an event or an
// answer, told apart by its keys, and each is a fresh copy. Commands are
// one at a time (the monitor's turn), so answers arrive in order.
type qmpConn struct {
	conn    net.Conn
	answers chan qmpAnswer
	events  chan qmp.Event
	ended   chan struct{} // closed when the reader ends
	once    sync.Once
}

type qmpAnswer struct{ raw []byte }

// qmpMessage has the keys that tell QMP's messages apart.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Event  string          `json:"event"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// dialQMP connects to the QMP socket and reads the greeting, within
// timeout; negotiate then enables commands.
func dialQMP(socket string, timeout time.Duration) (*qmpConn, error) {
	conn, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return nil, err
	}
	c := &qmpConn{conn: conn, answers: make(chan qmpAnswer, 1), events: make(chan qmp.Event, 16), ended: make(chan struct{})}
	reader := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	greeting, err := reader.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("no greeting (is another client connected, or QEMU hung?): %w", err)
	}
	var m qmpMessage
	if err := json.Unmarshal(greeting, &m); err != nil || m.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("not a QMP greeting: %q", greeting)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.read(reader)
	return c, nil
}

// negotiate leaves capabilities negotiation mode.
func (c *qmpConn) negotiate() error {
	request, _ := json.Marshal(qmp.Command{Execute: "qmp_capabilities"})
	_, err := c.run(request)
	return err
}

// read sorts every line into events and answers until the connection
// ends; then it ends both channels' users.
func (c *qmpConn) read(reader *bufio.Reader) {
	defer close(c.ended)
	defer close(c.events)
	for {
		line, err := reader.ReadBytes('\n') // a fresh slice: nothing reuses it
		if err != nil {
			return // run sees ended
		}
		var m qmpMessage
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		if m.Event != "" {
			var e qmp.Event
			if json.Unmarshal(line, &e) == nil {
				c.events <- e
			}
			continue
		}
		if m.Return == nil && m.Error == nil {
			continue // neither an event nor an answer
		}
		select {
		case c.answers <- qmpAnswer{line}:
		default:
			// An answer nobody asked for (its command's caller gave up and
			// the connection is being dropped): never someone else's.
		}
	}
}

// run sends a command and waits for its answer. QEMU's own error comes
// back as a *qmpReply error.
func (c *qmpConn) run(request []byte) ([]byte, error) {
	if _, err := c.conn.Write(append(request, '\n')); err != nil {
		return nil, err
	}
	var a qmpAnswer
	select {
	case a = <-c.answers:
	case <-c.ended:
		select {
		case a = <-c.answers: // answered just before the end
		default:
			return nil, io.EOF
		}
	}
	var m qmpMessage
	if err := json.Unmarshal(a.raw, &m); err != nil {
		return nil, err
	}
	if m.Error != nil {
		return nil, &qmpReply{Class: m.Error.Class, Desc: m.Error.Desc}
	}
	return a.raw, nil
}

// qmpReply is QEMU's error answer.
type qmpReply struct{ Class, Desc string }

func (e *qmpReply) Error() string { return e.Desc }

// close ends the connection; the reader then ends.
func (c *qmpConn) close() {
	c.once.Do(func() { c.conn.Close() })
}

// isQEMUError: err is QEMU's answer, not a failure of the connection.
func isQEMUError(err error) bool {
	var reply *qmpReply
	return errors.As(err, &reply)
}
