//go:build linux

package guestboot

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// QMP is a minimal QEMU Machine Protocol client: enough for tests to
// migrate a VM. Commands are sent one at a time.
type QMP struct {
	conn  net.Conn
	lines *bufio.Scanner
}

// DialQMP connects and negotiates capabilities.
func DialQMP(ctx context.Context, socket string) (*QMP, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("QMP %s: %w", socket, err)
	}
	q := &QMP{conn: conn, lines: bufio.NewScanner(conn)}
	q.lines.Buffer(make([]byte, 64<<10), 16<<20)
	if _, err := q.readMessage(ctx); err != nil { // the greeting
		conn.Close()
		return nil, err
	}
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }

// Execute runs a command and returns its "return" value.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	request := map[string]any{"execute": command}
	if args != nil {
		request["arguments"] = args
	}
	line, err := json.Marshal(request)
	if err != nil {
		return nil, err
	}
	q.setDeadline(ctx)
	if _, err := q.conn.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", command, err)
	}
	for {
		msg, err := q.readMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("QMP %s: %w", command, err)
		}
		switch {
		case msg.Error != nil:
			return nil, fmt.Errorf("QMP %s: %s: %s", command, msg.Error.Class, msg.Error.Desc)
		case msg.Return != nil:
			return msg.Return, nil
		}
		// An event ({"event": ...}): not the answer, read on.
	}
}

// ExecuteInto runs a command and decodes its return value into result.
func (q *QMP) ExecuteInto(ctx context.Context, command string, args, result any) error {
	raw, err := q.Execute(ctx, command, args)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, result)
}

type qmpMessage struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

func (q *QMP) readMessage(ctx context.Context) (qmpMessage, error) {
	q.setDeadline(ctx)
	if !q.lines.Scan() {
		if err := q.lines.Err(); err != nil {
			return qmpMessage{}, err
		}
		return qmpMessage{}, fmt.Errorf("QMP connection closed")
	}
	var msg qmpMessage
	err := json.Unmarshal(q.lines.Bytes(), &msg)
	return msg, err
}

func (q *QMP) setDeadline(ctx context.Context) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	q.conn.SetDeadline(deadline)
}
