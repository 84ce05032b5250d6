package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

const heartbeatInterval = 100 * time.Millisecond

// heartbeat counts ticks of heartbeatInterval. The host compares two
// readings to see the guest running (and how much it ran while, say, a
// migration paused it).
type heartbeat struct {
	count        atomic.Uint64
	lastUnixNano atomic.Int64
}

func (h *heartbeat) run(ctx context.Context) {
	ticker := time.NewTicker(heartbeatInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			h.lastUnixNano.Store(time.Now().UnixNano())
			h.count.Add(1)
		}
	}
}

func (a *agent) info() guestagent.Info {
	hostname, _ := os.Hostname()
	memTotal, _ := meminfoBytes("MemTotal")
	return guestagent.Info{
		BootID:            a.bootID,
		UptimeSeconds:     uptimeSeconds(),
		Heartbeat:         a.heartbeat.count.Load(),
		HeartbeatUnixNano: a.heartbeat.lastUnixNano.Load(),
		MemoryBytes:       memTotal,
		Hostname:          hostname,
		Interfaces:        interfaces(),
		AgentVersion:      version,
		AgentRestarts:     a.restarts,
		ProtocolVersion:   guestagent.ProtocolVersion,
		Dirty:             a.dirty.status(),
		Disks:             a.disks.writerStatuses(),
		EchoConnections:   int(a.echo.conns.Load()),
	}
}

func uptimeSeconds() float64 {
	s, err := readTrimmed("/proc/uptime")
	if err != nil {
		return 0
	}
	fields := strings.Fields(s)
	up, _ := strconv.ParseFloat(fields[0], 64)
	return up
}

// meminfoBytes returns one field of /proc/meminfo in bytes.
func meminfoBytes(field string) (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		name, rest, ok := strings.Cut(scanner.Text(), ":")
		if !ok || name != field {
			continue
		}
		kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kib * 1024, err
	}
	return 0, fmt.Errorf("no %s in /proc/meminfo", field)
}

// interfaces lists the non-loopback interfaces with their IPv4 addresses.
func interfaces() []guestagent.Interface {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []guestagent.Interface
	for _, iface := range ifaces {
		if iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		out = append(out, guestagent.Interface{
			Name: iface.Name,
			MAC:  iface.HardwareAddr.String(),
			IPv4: ipv4Addrs(iface),
			Up:   iface.Flags&net.FlagUp != 0,
		})
	}
	return out
}

func ipv4Addrs(iface net.Interface) []string {
	addrs, _ := iface.Addrs()
	cidrs := []string{}
	for _, addr := range addrs {
		if ipnet, ok := addr.(*net.IPNet); ok && ipnet.IP.To4() != nil {
			cidrs = append(cidrs, ipnet.String())
		}
	}
	return cidrs
}
