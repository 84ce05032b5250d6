package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

const bootIDPath = "/proc/sys/kernel/random/boot_id"

// agent holds the state the commands act on.
type agent struct {
	log       *log.Logger
	bootID    string
	restarts  int // earlier agent processes in this boot
	heartbeat *heartbeat
	dirty     *dirtier
	disks     *diskManager
	echo      *echoServer
	commands  map[string]commandFunc
}

// commandFunc runs one command on its raw JSON arguments.
type commandFunc func(args json.RawMessage) (any, error)

func newAgent(logger *log.Logger) (*agent, error) {
	bootID, err := readTrimmed(bootIDPath)
	if err != nil {
		return nil, fmt.Errorf("reading boot ID: %w", err)
	}
	a := &agent{
		log:       logger,
		bootID:    bootID,
		heartbeat: &heartbeat{},
		dirty:     &dirtier{log: logger},
		disks:     newDiskManager(logger),
		echo:      &echoServer{bootID: bootID, log: logger},
	}
	a.commands = map[string]commandFunc{
		guestagent.CmdInfo:       func(json.RawMessage) (any, error) { return a.info(), nil },
		guestagent.CmdDirty:      withArgs(a.dirty.apply),
		guestagent.CmdDiskWrite:  withArgs(a.disks.write),
		guestagent.CmdDiskVerify: withArgs(a.disks.verify),
		guestagent.CmdDiskFiles:  withArgs(a.disks.files),
		guestagent.CmdShutdown:   func(json.RawMessage) (any, error) { return powerOff(logger) },
	}
	return a, nil
}

// withArgs adapts a typed command to a commandFunc; unknown argument fields
// are rejected, so a typo on the host is an error instead of a default.
func withArgs[A any, R any](run func(A) (R, error)) commandFunc {
	return func(raw json.RawMessage) (any, error) {
		var args A
		if len(raw) > 0 && string(raw) != "null" {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&args); err != nil {
				return nil, fmt.Errorf("bad args: %w", err)
			}
		}
		return run(args)
	}
}

// handle answers one request line; it never fails, errors go in the
// response.
func (a *agent) handle(line []byte) guestagent.Response {
	var req guestagent.Request
	if err := json.Unmarshal(line, &req); err != nil {
		return guestagent.Response{Error: fmt.Sprintf("bad request line: %v", err)}
	}
	command, ok := a.commands[req.Cmd]
	if !ok {
		return guestagent.Response{ID: req.ID, Error: fmt.Sprintf("unknown command %q (have info, dirty, disk-write, disk-verify, disk-files, shutdown)", req.Cmd)}
	}
	result, err := command(req.Args)
	if err != nil {
		return guestagent.Response{ID: req.ID, Error: err.Error()}
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return guestagent.Response{ID: req.ID, Error: fmt.Sprintf("encoding result: %v", err)}
	}
	return guestagent.Response{ID: req.ID, Result: raw}
}

// countStart records an agent start in path (on tmpfs, so per boot) and
// returns how many agents started before this one.
func countStart(path string) int {
	before := 0
	if s, err := readTrimmed(path); err == nil {
		before, _ = strconv.Atoi(s)
	}
	_ = os.WriteFile(path, []byte(strconv.Itoa(before+1)+"\n"), 0o644)
	return before
}

func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New(path + " is empty")
	}
	return s, nil
}
