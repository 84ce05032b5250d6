package trust

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"strings"
)

// ParseBundle splits a PEM bundle into its CERTIFICATE blocks. Text
// between blocks is ignored; a bundle with something else than
// certificates, or a damaged block, is an error.
func ParseBundle(bundle string) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := []byte(bundle)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a %s block in a CA bundle; only CERTIFICATE blocks belong there", block.Type)
		}
		blocks = append(blocks, block)
	}
	if strings.Contains(string(rest), "-----BEGIN") {
		return nil, fmt.Errorf("a damaged PEM block in the CA bundle")
	}
	return blocks, nil
}

// MergeBundles adds to bundle each certificate of add that it lacks
// (compared by content, not by text), keeping bundle's own certificates
// in their order, and returns the merged bundle and how many were added.
// With nothing to add, bundle is returned unchanged.
func MergeBundles(bundle, add string) (string, int, error) {
	have, err := ParseBundle(bundle)
	if err != nil {
		return "", 0, err
	}
	more, err := ParseBundle(add)
	if err != nil {
		return "", 0, err
	}
	var added []*pem.Block
	for _, block := range more {
		if containsBlock(have, block) || containsBlock(added, block) {
			continue
		}
		added = append(added, block)
	}
	if len(added) == 0 {
		return bundle, 0, nil
	}
	var out bytes.Buffer
	for _, block := range append(have, added...) {
		if err := pem.Encode(&out, &pem.Block{Type: block.Type, Bytes: block.Bytes}); err != nil {
			return "", 0, err
		}
	}
	return out.String(), len(added), nil
}

func containsBlock(blocks []*pem.Block, b *pem.Block) bool {
	for _, have := range blocks {
		if bytes.Equal(have.Bytes, b.Bytes) {
			return true
		}
	}
	return false
}
