module github.com/digitalocean/go-qemu

go 1.18

require (
	github.com/alecthomas/repr v0.4.0
	github.com/digitalocean/go-libvirt v0.0.0-20220804181439-8648fbde413e
	github.com/fatih/camelcase v1.0.0
	golang.org/x/sys v0.30.0
)
