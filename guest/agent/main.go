// Command cclm-agent is the cclm guest agent: PID 1's busybox init runs it
// in the guest (guest/rootfs/etc/inittab) and respawns it if it dies.
//
// It answers the host over the virtio-serial port guestagent.PortName with
// the newline-delimited JSON protocol of package guestagent, and serves the
// TCP echo service on guestagent.EchoPort. See guest/README.md.
//
// It is built static (CGO_ENABLED=0) from the standard library only, since
// the guest has no libc.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

// version is set by guest/build.sh (-ldflags -X main.version=...) to a hash
// of the agent's sources, so the host can tell which build a guest runs.
var version = "dev"

func main() {
	portName := flag.String("port-name", guestagent.PortName, "virtio-serial port name to serve")
	portPath := flag.String("port-path", "", "serve this device instead of looking the port up by name (for debugging)")
	echoAddr := flag.String("echo-addr", fmt.Sprintf(":%d", guestagent.EchoPort), "TCP echo service address")
	logTo := flag.String("log", "auto", "where to log: kmsg, stderr, or auto (kmsg when writable)")
	startsFile := flag.String("starts-file", "/run/cclm-agent.starts", "counts agent starts in this boot (keep it on tmpfs)")
	flag.Parse()

	logger := newLogger(*logTo)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	a, err := newAgent(logger)
	if err != nil {
		logger.Fatalf("starting: %v", err)
	}
	a.restarts = countStart(*startsFile)
	logger.Printf("cclm-agent %s starting, boot %s, %d earlier starts", version, a.bootID, a.restarts)
	go a.heartbeat.run(ctx)
	go a.echo.listenAndServe(ctx, *echoAddr)
	ports := portServer{agent: a, log: logger, name: *portName, path: *portPath, classDir: virtioPortsDir}
	ports.serveForever(ctx)
}

// newLogger logs to the kernel log when it can: the agent's stdout is the
// serial console, which belongs to the interactive shell. `dmesg` in the
// guest shows the agent's messages, and so does the console without quiet.
func newLogger(where string) *log.Logger {
	if where == "kmsg" || where == "auto" {
		if kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
			return log.New(kmsgWriter{kmsg}, "", 0)
		} else if where == "kmsg" {
			fmt.Fprintf(os.Stderr, "cclm-agent: /dev/kmsg: %v; logging to stderr\n", err)
		}
	}
	return log.New(os.Stderr, "cclm-agent: ", log.LstdFlags|log.Lmicroseconds)
}

// kmsgWriter writes each log message as one kernel log record at level
// info (6), which a quiet console does not show.
type kmsgWriter struct{ f *os.File }

func (w kmsgWriter) Write(p []byte) (int, error) {
	if _, err := w.f.Write(append([]byte("<6>cclm-agent: "), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}
