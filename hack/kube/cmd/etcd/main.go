// Command etcd runs a single-member etcd server through go.etcd.io/etcd's
// embed package, at the version that Kubernetes pins. It takes the handful of
// flags a single-node control plane needs, named as etcd's own.
package main

import (
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	cfg := embed.NewConfig()
	dataDir := flag.String("data-dir", "default.etcd", "path to the data directory")
	name := flag.String("name", "default", "human-readable name for this member")
	clientURL := flag.String("listen-client-urls", "http://127.0.0.1:2379", "URL to listen on for client traffic")
	peerURL := flag.String("listen-peer-urls", "http://127.0.0.1:2380", "URL to listen on for peer traffic")
	quotaBytes := flag.Int64("quota-backend-bytes", 2<<30, "backend storage quota in bytes")
	flag.Parse()

	cfg.Dir = *dataDir
	cfg.Name = *name
	cfg.LogLevel = "warn"
	cfg.QuotaBackendBytes = *quotaBytes
	cfg.UnsafeNoFsync = os.Getenv("ETCD_UNSAFE_NO_FSYNC") == "true"
	cfg.ListenClientUrls = mustURLs(*clientURL)
	cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	cfg.ListenPeerUrls = mustURLs(*peerURL)
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	server, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("etcd: start: %v", err)
	}
	defer server.Close()
	select {
	case <-server.Server.ReadyNotify():
		log.Printf("etcd: ready, serving clients on %s", *clientURL)
	case <-time.After(60 * time.Second):
		server.Server.Stop()
		log.Fatal("etcd: not ready after 60s")
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-server.Err():
		log.Fatalf("etcd: %v", err)
	case sig := <-signals:
		log.Printf("etcd: %v, stopping", sig)
	}
}

func mustURLs(raw string) []url.URL {
	parsed, err := url.Parse(raw)
	if err != nil {
		log.Fatalf("etcd: bad URL %q: %v", raw, err)
	}
	return []url.URL{*parsed}
}
