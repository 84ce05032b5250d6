// Package ipam reads the CNI configuration of a NetworkAttachmentDefinition
// and hands out addresses from it as whereabouts does: one IPPool per range,
// allocations keyed by their offset, updated with optimistic concurrency so
// that two allocators never hand out the same address. It also tells whether
// two clusters' NADs on one L2 segment could clash (Overlap, Disjoint).
// Parsing and choosing are pure; only Allocator talks to an API server.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// The IPAM types ParseNADConfig accepts.
const (
	// TypeWhereabouts allocates cluster-wide from a range, recording
	// allocations in IPPool objects (what the OpenShift guide's NADs use).
	TypeWhereabouts = "whereabouts"
	// TypeStatic gives every holder the addresses listed in the NAD.
	TypeStatic = "static"
)

// The keys that may name the link an interface hangs from.
const (
	KeyMaster = "master"
	KeyBridge = "bridge"
)

// macvlanModes are the modes of the macvlan CNI plugin.
var macvlanModes = []string{"bridge", "private", "vepa", "passthru"}

// Config is the part of a NAD's CNI configuration that cclm acts on.
// Other keys (cniVersion, capabilities, ...) are accepted and ignored, as
// CNI plugins do.
type Config struct {
	// Name is the CNI network name, e.g. "migration-bridge".
	Name string
	// Type is the CNI plugin, e.g. "macvlan" or "bridge".
	Type string
	// Master is the link the interface hangs from: a macvlan's parent or
	// the bridge plugin's bridge. "" if the NAD names none.
	Master string
	// MasterKey is the key Master came from, KeyMaster or KeyBridge, so
	// that messages can tell the user which line of the NAD to fix. The
	// OpenShift guide's macvlan NAD says "bridge": "br-2001"; cclm takes
	// that as the macvlan's parent, since the macvlan plugin itself has no
	// such key.
	MasterKey string
	// Mode is a macvlan's mode; "bridge" when the NAD sets none, as in the
	// macvlan plugin. Empty for other types.
	Mode string
	// MTU is the interface MTU; 0 means the parent's.
	MTU int
	// IPAM is the address management; its Type is "" if the NAD has none.
	IPAM IPAM
}

// IPAM is a NAD's "ipam" section, validated and normalized.
type IPAM struct {
	// Type is TypeWhereabouts, TypeStatic, or "" (no ipam section).
	Type string

	// Range is the whereabouts range's network, masked (host bits of the
	// NAD's "range" are dropped, as whereabouts does).
	Range netip.Prefix
	// First and Last bound what the pool hands out, inclusive: range_start
	// and range_end (or the range's bounds), never the network or the
	// broadcast address.
	First, Last netip.Addr
	// Exclude lists networks never handed out (masked).
	Exclude []netip.Prefix
	// Gateway is the router's address (invalid if unset). Unlike upstream
	// whereabouts, cclm never hands it out: a node holding the router's
	// address would cut the segment off from it.
	Gateway netip.Addr
	// NetworkName is whereabouts' network_name: it prefixes the pool name
	// so that NADs sharing a range can have separate pools.
	NetworkName string

	// Addresses are a static IPAM's addresses, with their prefix lengths.
	Addresses []netip.Prefix
}

// rawConfig is the JSON of a single CNI plugin configuration, or of a
// plugin list (then Plugins is set).
type rawConfig struct {
	Name    string            `json:"name"`
	Type    string            `json:"type"`
	Master  string            `json:"master"`
	Bridge  string            `json:"bridge"`
	Mode    string            `json:"mode"`
	MTU     int               `json:"mtu"`
	IPAM    *rawIPAM          `json:"ipam"`
	Plugins []json.RawMessage `json:"plugins"`
}

type rawIPAM struct {
	Type        string          `json:"type"`
	Range       string          `json:"range"`
	RangeStart  string          `json:"range_start"`
	RangeEnd    string          `json:"range_end"`
	Exclude     []string        `json:"exclude"`
	Gateway     string          `json:"gateway"`
	NetworkName string          `json:"network_name"`
	IPRanges    json.RawMessage `json:"ipRanges"`
	Addresses   []rawAddress    `json:"addresses"`
}

type rawAddress struct {
	Address string `json:"address"`
}

// ParseNADConfig parses a NAD's spec.config. For a plugin list it reads the
// first plugin, the one that makes the interface. Errors name the field and
// say how to fix it.
func ParseNADConfig(data []byte) (Config, error) {
	raw, err := decodeConfig(data, "")
	if err != nil {
		return Config{}, err
	}
	if len(raw.Plugins) > 0 {
		name := raw.Name
		if raw, err = decodeConfig(raw.Plugins[0], "plugins[0]."); err != nil {
			return Config{}, err
		}
		raw.Name = name
	}
	return raw.config()
}

// decodeConfig unmarshals one configuration object; prefix locates it in
// the document for messages ("" or "plugins[0].").
func decodeConfig(data []byte, prefix string) (rawConfig, error) {
	var raw rawConfig
	err := json.Unmarshal(data, &raw)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return raw, nil
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return raw, fmt.Errorf("%s%s: got a JSON %s, want %s", prefix, typeErr.Field, typeErr.Value, jsonKind(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr):
		return raw, fmt.Errorf("%snot valid JSON at byte %d: %v", prefix, syntaxErr.Offset, err)
	}
	return raw, fmt.Errorf("%snot a JSON object of CNI configuration: %v", prefix, err)
}

// jsonKind names a Go kind as the JSON a user should write.
func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int":
		return "a number"
	case "slice":
		return "a list"
	case "ptr", "struct", "map":
		return "an object"
	}
	return goKind
}

func (raw rawConfig) config() (Config, error) {
	if raw.Type == "" {
		return Config{}, errors.New(`type is missing; name the CNI plugin, e.g. "type": "macvlan"`)
	}
	if raw.MTU < 0 {
		return Config{}, fmt.Errorf("mtu %d is negative; leave it out to use the parent's MTU", raw.MTU)
	}
	cfg := Config{Name: raw.Name, Type: raw.Type, MTU: raw.MTU}
	var err error
	if cfg.Master, cfg.MasterKey, err = raw.master(); err != nil {
		return Config{}, err
	}
	if cfg.Mode, err = raw.mode(); err != nil {
		return Config{}, err
	}
	if raw.IPAM != nil {
		if cfg.IPAM, err = raw.IPAM.ipam(); err != nil {
			return Config{}, err
		}
	}
	return cfg, nil
}

// master finds the link the interface hangs from, and which key named it.
func (raw rawConfig) master() (name, key string, err error) {
	switch {
	case raw.Type == "bridge":
		return raw.Bridge, KeyBridge, nil
	case raw.Master != "" && raw.Bridge != "" && raw.Master != raw.Bridge:
		return "", "", fmt.Errorf("master %q and bridge %q disagree on the %s's parent; keep one of them", raw.Master, raw.Bridge, raw.Type)
	case raw.Master != "":
		return raw.Master, KeyMaster, nil
	case raw.Bridge != "":
		return raw.Bridge, KeyBridge, nil
	}
	return "", "", nil
}

func (raw rawConfig) mode() (string, error) {
	if raw.Type != "macvlan" {
		return raw.Mode, nil
	}
	if raw.Mode == "" {
		return "bridge", nil
	}
	for _, mode := range macvlanModes {
		if raw.Mode == mode {
			return mode, nil
		}
	}
	return "", fmt.Errorf("mode %q is not a macvlan mode; use one of %s", raw.Mode, strings.Join(macvlanModes, ", "))
}

func (raw *rawIPAM) ipam() (IPAM, error) {
	switch raw.Type {
	case TypeWhereabouts:
		return raw.whereabouts()
	case TypeStatic:
		return raw.static()
	case "":
		return IPAM{}, errors.New(`ipam.type is missing; use "whereabouts" (cluster-wide allocation, as in the OpenShift guide) or "static"`)
	}
	return IPAM{}, fmt.Errorf(`ipam.type %q is not supported; use "whereabouts" (cluster-wide allocation, as in the OpenShift guide) or "static"`, raw.Type)
}

func (raw *rawIPAM) static() (IPAM, error) {
	if len(raw.Addresses) == 0 {
		return IPAM{}, errors.New(`ipam.addresses is empty; list at least one, e.g. "addresses": [{"address": "192.168.201.10/24"}]`)
	}
	ipam := IPAM{Type: TypeStatic}
	for i, entry := range raw.Addresses {
		address, err := netip.ParsePrefix(entry.Address)
		if err != nil {
			return IPAM{}, fmt.Errorf("ipam.addresses[%d].address %q: not an address with a prefix length; use e.g. 192.168.201.10/24", i, entry.Address)
		}
		ipam.Addresses = append(ipam.Addresses, address)
	}
	return ipam, nil
}
