package vmiruntime

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kdomanski/iso9660"

	"github.com/cclm-io/cclm/internal/testenv"
)

// The image keeps each key as the file's name (Rock Ridge), lower case
// and dots included, and its content byte for byte, as the guest agent's
// reader sees it.
func TestWriteISOKeepsNamesAndContent(t *testing.T) {
	testenv.RequireBinary(t, isoTool)
	path := filepath.Join(t.TempDir(), "config.iso")
	files := map[string][]byte{"unattend.xml": []byte("<unattend/>"), "userdata": []byte("#cloud-config\n"), "empty": {}}
	if err := writeISO(context.Background(), path, "cfgdata", files); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	image, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatal(err)
	}
	if label, _ := image.Label(); label != "cfgdata" {
		t.Errorf("label %q", label)
	}
	root, err := image.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range children {
		content, _ := io.ReadAll(c.Reader())
		got[c.Name()] = string(content)
	}
	for name, want := range files {
		if got[name] != string(want) {
			t.Errorf("file %q: %q, want %q (all: %q)", name, got[name], want, got)
		}
	}
	if len(got) != len(files) {
		t.Errorf("files %q, want %d", got, len(files))
	}
	if err := writeISO(context.Background(), path, "cfgdata", map[string][]byte{"a/b": nil}); err == nil {
		t.Error("a key with a slash was written")
	}
}
