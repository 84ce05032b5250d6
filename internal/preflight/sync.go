package preflight

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// SyncReachable (side = the side reached): every address the side's
// synchronization controller publishes answers a TLS handshake from where
// the other side's controller dials (Input.DialSync with from = the other
// side) within Timeout. The controller demands a client certificate, which
// preflight has none of, so a handshake that delivers the server's
// certificate is the proof it is there and serving: TCP alone is not (a
// frozen process's socket still accepts connections).
func checkSyncReachable(ctx context.Context, r *runner, side Side) Check {
	kv, failure := r.readKubeVirt(ctx, side, SyncReachable)
	if failure != nil {
		return *failure
	}
	addresses := kv.Status.SynchronizationAddresses
	from := r.name(other(side))
	results := make([]probeResult, len(addresses))
	var wg sync.WaitGroup
	for i, address := range addresses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = probeSync(ctx, func(ctx context.Context) (net.Conn, error) { return r.in.DialSync(ctx, from, address) }, address)
		}()
	}
	wg.Wait()
	return evalSyncReachable(r, side, results)
}

// probeResult is what one probe found.
type probeResult struct {
	address string
	// subject of the server certificate; "" if none came.
	subject string
	took    time.Duration
	err     error
	// connected: TCP connected (so a missing certificate means the server
	// did not answer the handshake).
	connected bool
}

// probeSync dials address and starts a TLS handshake, keeping the server's
// certificate when it comes: reachable means a certificate came.
func probeSync(ctx context.Context, dial func(context.Context) (net.Conn, error), address string) probeResult {
	began := time.Now()
	result := probeResult{address: address}
	conn, err := dial(ctx)
	if err != nil {
		result.err, result.took = err, time.Since(began)
		return result
	}
	defer conn.Close()
	result.connected = true
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// VerifyPeerCertificate runs on this goroutine, inside the handshake.
	config := &tls.Config{
		// Only whether a server answers is checked here: the peers
		// authenticate each other with the exchanged CAs.
		InsecureSkipVerify: true, //nolint:gosec // a reachability probe, nothing is sent
		MinVersion:         tls.VersionTLS12,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			result.subject = "(unparsable certificate)"
			if len(raw) > 0 {
				if cert, err := x509.ParseCertificate(raw[0]); err == nil {
					result.subject = cert.Subject.String()
					if result.subject == "" && len(cert.DNSNames)+len(cert.IPAddresses) > 0 {
						result.subject = "SANs " + strings.Join(append(cert.DNSNames, ipStrings(cert.IPAddresses)...), ",")
					}
				}
			}
			return nil
		},
	}
	tlsConn := tls.Client(conn, config)
	err = tlsConn.HandshakeContext(ctx)
	result.took = time.Since(began)
	if result.subject == "" {
		result.err = err
		if err == nil {
			result.err = fmt.Errorf("the handshake ended without a server certificate")
		}
	}
	return result
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

func evalSyncReachable(r *runner, side Side, results []probeResult) Check {
	reached, from := r.side(side), r.side(other(side))
	var good, bad []string
	for _, res := range results {
		if res.subject != "" {
			good = append(good, fmt.Sprintf("%s answered the TLS handshake in %s (server certificate %s)", res.address, res.took.Round(time.Millisecond), res.subject))
			continue
		}
		why := fmt.Sprintf("%v", res.err)
		if res.connected {
			why = fmt.Sprintf("TCP connected but no TLS server answer within %s (%v): the process may be frozen or overloaded", res.took.Round(time.Millisecond), res.err)
		}
		bad = append(bad, fmt.Sprintf("%s: %s", res.address, why))
	}
	where := fmt.Sprintf("from %s's synchronization controller's network", from.name)
	if len(bad) == 0 {
		return passed("%s's synchronization controller is reachable %s: %s", reached.name, where, strings.Join(good, "; "))
	}
	message := fmt.Sprintf("%s's synchronization controller is unreachable %s: %s", reached.name, where, strings.Join(bad, "; "))
	if len(good) > 0 {
		message += " (while " + strings.Join(good, "; ") + ")"
	}
	return failed(message, fmt.Sprintf(
		"check that %s's virt-synchronization-controller runs and answers (in the lab: `cclm lab status`, and its log under the lab's clusters/%s/logs), that it publishes its current address, and that %s's migration network reaches it (both clusters' migration NADs on the same L2 segment, e.g. the OpenShift guide's br-2001 / VLAN 2001)",
		reached.name, reached.name, from.name))
}
