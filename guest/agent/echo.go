package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net"
	"sync/atomic"
	"time"
)

// echoServer answers each line with "N BOOTID LINE" (N counts the lines of
// this connection from 1). A client outside the VM holding a connection
// across a migration sees from N that no line was lost and from BOOTID that
// it still talks to the same running guest.
type echoServer struct {
	bootID string
	log    *log.Logger
	conns  atomic.Int64 // open connections
}

const maxEchoLine = 64 << 10

func (e *echoServer) listenAndServe(ctx context.Context, addr string) {
	var ln net.Listener
	for {
		var err error
		if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", addr); err == nil {
			break
		}
		e.log.Printf("echo: listen %s: %v; retrying", addr, err)
		sleepCtx(ctx, time.Second)
		if ctx.Err() != nil {
			return
		}
	}
	e.log.Printf("echo: listening on %s", ln.Addr())
	e.serveListener(ctx, ln)
}

// serveListener accepts connections until ctx ends.
func (e *echoServer) serveListener(ctx context.Context, ln net.Listener) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Printf("echo: accept: %v", err)
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		go e.serve(conn)
	}
}

func (e *echoServer) serve(conn net.Conn) {
	e.conns.Add(1)
	defer e.conns.Add(-1)
	defer conn.Close()
	lines := bufio.NewScanner(conn)
	lines.Buffer(make([]byte, 4096), maxEchoLine)
	out := bufio.NewWriter(conn)
	for n := 1; lines.Scan(); n++ {
		fmt.Fprintf(out, "%d %s %s\n", n, e.bootID, lines.Bytes())
		if err := out.Flush(); err != nil {
			return
		}
	}
}
