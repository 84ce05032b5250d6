package migrationcontroller

import (
	"testing"
	"time"
)

func TestSetMetadata(t *testing.T) {
	m := migration(unset)
	if !setMetadata(m, Decision{Finalizer: true}) || len(m.Finalizers) != 1 {
		t.Fatalf("finalizer not added: %v", m.Finalizers)
	}
	if setMetadata(m, Decision{Finalizer: true}) {
		t.Error("an unchanged decision changed the metadata")
	}
	w := &Watermark{RemainingBytes: 1, Since: mt(time.Second)}
	if !setMetadata(m, Decision{Finalizer: true, Watermark: w}) || m.Annotations[WatermarkAnnotation] == "" {
		t.Fatalf("watermark not written: %v", m.Annotations)
	}
	if setMetadata(m, Decision{Finalizer: true, Watermark: watermarkOf(m)}) {
		t.Error("the watermark read back differs from the one written")
	}
	if !setMetadata(m, Decision{}) || len(m.Finalizers) != 0 || len(m.Annotations) != 0 {
		t.Errorf("finalizer %v or annotations %v left", m.Finalizers, m.Annotations)
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("abcdef", 5); got != "ab..." {
		t.Errorf("%q", got)
	}
	if got := truncate("aé€", 5); got != "a..." {
		t.Errorf("a cut through a rune: %q", got)
	}
	if got := truncate("short", 10); got != "short" {
		t.Errorf("%q", got)
	}
}
