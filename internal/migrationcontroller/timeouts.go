package migrationcontroller

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/convergence"
)

const gib = int64(1) << 30

// completionTimeout is upstream's acceptable completion time for what
// moves: guest memory plus the PVC-backed disks, which cclm copies too
// (convergence.CompletionBudget, which the source agent uses as well).
func completionTimeout(perGiB int64, vmi *kubevirtv1.VirtualMachineInstance, claims []corev1.PersistentVolumeClaim) time.Duration {
	return convergence.CompletionBudget(perGiB, guestMemory(vmi)+claimsSize(vmi, claims))
}

// guestMemory is the memory the guest gets, as every component counts it.
func guestMemory(vmi *kubevirtv1.VirtualMachineInstance) int64 {
	return vmi.Spec.GuestMemoryBytes()
}

// claimsSize sums the sizes of the VMI's claims: the bound capacity, else
// the request.
func claimsSize(vmi *kubevirtv1.VirtualMachineInstance, claims []corev1.PersistentVolumeClaim) int64 {
	var total int64
	for _, name := range vmi.Spec.ClaimNames() {
		for i := range claims {
			if claims[i].Namespace == vmi.Namespace && claims[i].Name == name {
				total += claimSize(&claims[i])
			}
		}
	}
	return total
}

func claimSize(pvc *corev1.PersistentVolumeClaim) int64 {
	if q, ok := pvc.Status.Capacity[corev1.ResourceStorage]; ok {
		return q.Value()
	}
	q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	return q.Value()
}

// WatermarkAnnotation on a running VMIM holds its progress watermark as
// JSON (Watermark).
const WatermarkAnnotation = "cclm.io/migration-progress"

// Watermark is the lowest progress.remainingBytes a migration reached and
// when: the progress timeout counts from Since. TransferredBytes at that
// moment gives the transfer rate since.
type Watermark struct {
	RemainingBytes   int64       `json:"remainingBytes"`
	TransferredBytes int64       `json:"transferredBytes"`
	Since            metav1.Time `json:"since"`
}

// watermarkOf reads the VMIM's watermark; a missing or unreadable one is
// nil (the clock then starts again, which only delays the timeout).
func watermarkOf(m *kubevirtv1.VirtualMachineInstanceMigration) *Watermark {
	raw, ok := m.Annotations[WatermarkAnnotation]
	if !ok {
		return nil
	}
	var w Watermark
	if err := json.Unmarshal([]byte(raw), &w); err != nil {
		return nil
	}
	return &w
}

// annotationValue is the watermark as WatermarkAnnotation holds it.
func (w *Watermark) annotationValue() string {
	data, err := json.Marshal(w)
	if err != nil {
		panic(err) // plain struct: cannot fail
	}
	return string(data)
}

// nextWatermark lowers the watermark when the migration got further than
// ever before; otherwise it is kept, and its age is how long the migration
// has made no progress.
//
// A remaining of 0 is not progress: QEMU reports 0 for a moment at the
// start of each pass over memory, before the dirty pages of the last pass
// are counted, and a watermark at 0 could then never be beaten.
func nextWatermark(w *Watermark, p *kubevirtv1.MigrationProgress, now metav1.Time) *Watermark {
	if p.RemainingBytes == 0 || (w != nil && p.RemainingBytes >= w.RemainingBytes) {
		return w
	}
	return &Watermark{RemainingBytes: p.RemainingBytes, TransferredBytes: p.TransferredBytes, Since: now}
}

// stalledMessage says why a migration made no progress, with the figures
// that show it and what would help, given what the configuration allows.
func stalledMessage(w *Watermark, p *kubevirtv1.MigrationProgress, config *kubevirtv1.MigrationConfiguration, stalled time.Duration) string {
	var figures []string
	figures = append(figures, "remaining "+bytesString(w.RemainingBytes))
	if p.DirtyRateBytesPerSecond > 0 {
		figures = append(figures, "dirty rate "+bytesString(p.DirtyRateBytesPerSecond)+"/s")
	}
	if seconds := stalled.Seconds(); seconds > 0 && p.TransferredBytes > w.TransferredBytes {
		rate := int64(float64(p.TransferredBytes-w.TransferredBytes) / seconds)
		figures = append(figures, "transfer rate "+bytesString(rate)+"/s")
	}
	return fmt.Sprintf("migration made no progress for %s (%s): the guest dirties memory faster than it is sent; %s",
		stalled.Round(time.Second), strings.Join(figures, ", "), remedies(config))
}

// remedies lists the settings that would let a stalled migration converge.
func remedies(config *kubevirtv1.MigrationConfiguration) string {
	var options []string
	if !isTrue(config.AllowAutoConverge) {
		options = append(options, "enable allowAutoConverge")
	}
	if !isTrue(config.AllowPostCopy) {
		options = append(options, "enable allowPostCopy")
	}
	if bw := config.BandwidthPerMigration; bw != nil && !bw.IsZero() {
		options = append(options, "raise bandwidthPerMigration (now "+bw.String()+"/s)")
	}
	if len(options) == 0 {
		return "reduce the guest's write load or give the migration network more bandwidth"
	}
	return strings.Join(options[:len(options)-1], ", ") + orLast(options)
}

func orLast(options []string) string {
	if len(options) == 1 {
		return options[0]
	}
	return " or " + options[len(options)-1]
}

func isTrue(b *bool) bool { return b != nil && *b }

// bytesString prints a byte count in binary units, e.g. "60 MiB" or
// "1.5 GiB".
func bytesString(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	value := float64(n)
	unit := 0
	for math.Abs(value) >= 1024 && unit < len(units)-1 {
		value /= 1024
		unit++
	}
	text := strconv.FormatFloat(value, 'f', 1, 64)
	return strings.TrimSuffix(text, ".0") + " " + units[unit]
}
