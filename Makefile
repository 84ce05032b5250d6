# cclm's build. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
KUBE_BINARIES := $(BIN)/etcd $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/kubectl
# Integration tests share control planes and guests per package; the whole
# suite must stay well inside CI's limit.
E2E_TIMEOUT ?= 45m

.PHONY: help setup kube build guest test test-unit test-fault demo lint check-generated clean
help: ## show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## install every prerequisite (apt packages, kube binaries, cclm)
	bash hack/setup.sh
	$(MAKE) kube guest build

# The kube binaries are rebuilt only when hack/kube's module changes.
kube: $(KUBE_BINARIES) ## build etcd, kube-apiserver, kube-controller-manager, kubectl into bin/
$(KUBE_BINARIES) &: hack/kube/go.mod hack/kube/go.sum hack/kube/cmd/etcd/main.go
	@echo "kube: building etcd, kube-apiserver, kube-controller-manager and kubectl from the Go module proxy (about 10 minutes cold on 2 cores, silent while it compiles)"
	cd hack/kube && $(GO) build -trimpath -o $(BIN)/ ./cmd/etcd \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
	touch $(KUBE_BINARIES)

guest: ## build the guest image (kernel, initramfs with the guest agent) into bin/guest
	bash guest/build.sh $(BIN)/guest

build: ## build bin/cclm
	$(GO) build -o $(BIN)/cclm ./cmd/cclm

test-unit: ## unit tests only (seconds, no prerequisites)
	$(GO) test ./...

# The fault suite (test/fault) runs after the rest, not beside it: both
# bring up a lab of two clusters and migrate guests under TCG, and two labs
# on a two-core machine starve each other's deadlines.
TEST_PACKAGES = $(shell $(GO) list ./... | grep -v /test/fault)

test: setup ## everything: unit and integration tests on real control planes, then the fault suite's CI subset
	CCLM_E2E=1 $(GO) test -count=1 -timeout $(E2E_TIMEOUT) $(TEST_PACKAGES)
	CCLM_E2E=1 $(GO) test -count=1 -timeout $(E2E_TIMEOUT) -v ./test/fault

test-fault: setup ## the fault suite alone (CCLM_FAULT_SOAK=1: every fault at every point)
	CCLM_E2E=1 $(GO) test -count=1 -timeout $(E2E_TIMEOUT) -v ./test/fault

demo: setup ## the lab demo
	bash hack/demo.sh

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Generated code is committed; this regenerates it and fails on any
# difference, so that api/ and what is generated from it never drift.
GENERATED := api config/crd
check-generated: generate proto ## fail if deepcopy, CRDs or protobuf code differ from what the generators make
	@git diff --exit-code --stat -- $(GENERATED) || { echo "generated code is stale: run make generate proto and commit the result" >&2; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- $(GENERATED)); \
		test -z "$$untracked" || { echo "generators made files that are not committed: $$untracked" >&2; exit 1; }

clean: ## remove build outputs (keeps the Go caches)
	rm -rf $(BIN)

-include Makefile.generate
-include Makefile.proto
