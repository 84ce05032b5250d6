package main

import (
	"fmt"
	"io"
	"os"

	"github.com/kdomanski/iso9660"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

// files is the disk-files command: the label and root files of an ISO
// 9660 disk, read from the block device (the guest has no isofs module;
// the image is read as a file system would).
func (m *diskManager) files(args guestagent.DiskFilesArgs) (guestagent.DiskFilesResult, error) {
	path, err := m.resolve(args.Disk)
	if err != nil {
		return guestagent.DiskFilesResult{}, err
	}
	device, err := os.Open(path)
	if err != nil {
		return guestagent.DiskFilesResult{}, err
	}
	defer device.Close()
	image, err := iso9660.OpenImage(device)
	if err != nil {
		return guestagent.DiskFilesResult{}, fmt.Errorf("%s is not an ISO 9660 image: %w", path, err)
	}
	result := guestagent.DiskFilesResult{Files: map[string]string{}}
	if result.Label, err = image.Label(); err != nil {
		return result, err
	}
	root, err := image.RootDir()
	if err != nil {
		return result, err
	}
	children, err := root.GetChildren()
	if err != nil {
		return result, err
	}
	for _, child := range children {
		if child.IsDir() {
			continue
		}
		content, err := io.ReadAll(io.LimitReader(child.Reader(), guestagent.MaxDiskFileBytes))
		if err != nil {
			return result, fmt.Errorf("read %s: %w", child.Name(), err)
		}
		result.Files[child.Name()] = string(content)
	}
	return result, nil
}
