package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQMP serves one QMP client on a unix socket as QEMU does when busy:
// an event before every answer, the capabilities' included (the case
// go-qemu mistook for the answer), and events after every answer.
func fakeQMP(t *testing.T, answer func(command string) string) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "qmp.sock")
	listener, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		event := func(n int) string {
			return fmt.Sprintf(`{"timestamp": {"seconds": 1, "microseconds": %d}, "event": "MIGRATION", "data": {"status": "active", "pad": %q}}`, n, strings.Repeat("x", 3000))
		}
		fmt.Fprintln(conn, `{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}}, "capabilities": []}}`)
		// Commands come as a JSON stream, not lines: go-qemu sends no newline.
		commands := json.NewDecoder(conn)
		for n := 0; ; n++ {
			var command struct {
				Execute string `json:"execute"`
			}
			if commands.Decode(&command) != nil {
				return
			}
			fmt.Fprintf(conn, "%s\n%s\n%s\n%s\n", event(n), answer(command.Execute), event(n), event(n))
		}
	}()
	return socket
}

// go-qemu's SocketMonitor gives a command another command's answer when
// an event precedes the capabilities' answer (digitalocean/go-qemu#210) or
// a later line overwrites an answer being decoded (#226); cclm builds it
// from third_party/forked/go-qemu, which fixes both.
func TestQMPAnswersGoToTheirCommands(t *testing.T) {
	socket := fakeQMP(t, func(command string) string {
		switch command {
		case "qmp_capabilities":
			return `{"return": {}}`
		case "object-del":
			return `{"error": {"class": "GenericError", "desc": "object 'cclm-tls-server' not found"}}`
		}
		return fmt.Sprintf(`{"return": {"command": %q, "pad": %q}}`, command, strings.Repeat("y", 5000))
	})
	m := newMonitor(socket, func(Event) {})
	defer m.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 20 {
		err := m.execute(ctx, "object-del", map[string]any{"id": "cclm-tls-server"}, nil)
		if qmpErr, ok := err.(*QMPError); !ok || !strings.Contains(qmpErr.Desc, "not found") {
			t.Fatalf("round %d: object-del answered %v", i, err)
		}
		var got struct {
			Command string `json:"command"`
		}
		if err := m.execute(ctx, "object-add", nil, &got); err != nil || got.Command != "object-add" {
			t.Fatalf("round %d: object-add got %+v, %v: another command's answer", i, got, err)
		}
	}
}
