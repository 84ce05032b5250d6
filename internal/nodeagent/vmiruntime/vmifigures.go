package vmiruntime

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"github.com/cclm-io/cclm/internal/metrics"
)

// vcpuThreads are a QEMU's vCPU thread IDs by vCPU index, asked over QMP
// (query-cpus-fast) until it answers once: they do not change while QEMU
// runs. A failed ask (QMP busy, the scrape's deadline) is tried again at
// the next scrape rather than leaving the VMI without vCPU figures.
type vcpuThreads struct {
	mu      sync.Mutex
	threads []int // nil until QMP answered
}

// cpuInfo is one entry of query-cpus-fast's answer.
type cpuInfo struct {
	CPUIndex int `json:"cpu-index"`
	ThreadID int `json:"thread-id"`
}

func (v *vcpuThreads) of(ctx context.Context, running *runningVMI) []int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.threads != nil {
		return v.threads
	}
	var cpus []cpuInfo
	if err := running.instance.Execute(ctx, "query-cpus-fast", nil, &cpus); err != nil {
		return nil
	}
	threads := make([]int, len(cpus))
	for _, cpu := range cpus {
		if cpu.CPUIndex >= 0 && cpu.CPUIndex < len(cpus) {
			threads[cpu.CPUIndex] = cpu.ThreadID
		}
	}
	v.threads = threads
	return threads
}

// figures are the running VMIs' process figures for the metrics: each
// vCPU thread's CPU time and the process's resident set, from /proc.
func (r *Runtime) figures() []metrics.VMIFigures {
	r.mu.Lock()
	running := make([]*runningVMI, 0, len(r.instances))
	for _, vmi := range r.instances {
		running = append(running, vmi)
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []metrics.VMIFigures
	for _, vmi := range running {
		process, err := procfs.NewProc(vmi.instance.Pid())
		if err != nil {
			continue // it just ended
		}
		stat, err := process.Stat()
		if err != nil {
			continue
		}
		figures := metrics.VMIFigures{Namespace: vmi.vmi.Namespace, Name: vmi.vmi.Name,
			ResidentBytes: int64(stat.ResidentMemory()), DomainBytes: int64(vmi.instance.Domain().MemoryMiB) << 20}
		for _, tid := range vmi.vcpus.of(ctx, vmi) {
			seconds := 0.0
			if thread, err := process.Thread(tid); err == nil {
				if threadStat, err := thread.Stat(); err == nil {
					seconds = threadStat.CPUTime()
				}
			}
			figures.VCPUSeconds = append(figures.VCPUSeconds, seconds)
		}
		out = append(out, figures)
	}
	return out
}
