// Command gen compiles .proto files to Go without protoc: the pure-Go
// compiler github.com/bufbuild/protocompile parses them, and the plugins
// protoc-gen-go and protoc-gen-go-grpc (Go tools of this module) generate
// the code from the CodeGeneratorRequest protoc would send them, next to
// each .proto (paths=source_relative). `make proto` runs it (Makefile.proto).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// plugins are the code generators run on every file, as `go tool` names.
var plugins = []string{"protoc-gen-go", "protoc-gen-go-grpc"}

func main() {
	root := flag.String("root", "api/proto", "the import root: .proto names are relative to it, and so are the generated files")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: gen -root DIR FILE.proto...")
		os.Exit(2)
	}
	if err := generate(context.Background(), *root, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func generate(ctx context.Context, root string, files []string) error {
	request, err := codeGeneratorRequest(ctx, root, files)
	if err != nil {
		return err
	}
	for _, plugin := range plugins {
		response, err := runPlugin(ctx, plugin, request)
		if err != nil {
			return err
		}
		if err := writeFiles(root, response); err != nil {
			return fmt.Errorf("%s: %w", plugin, err)
		}
	}
	return nil
}

// codeGeneratorRequest compiles files and describes them, with every file
// they import, in dependency order, as protoc does.
func codeGeneratorRequest(ctx context.Context, root string, files []string) (*pluginpb.CodeGeneratorRequest, error) {
	compiler := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{root}}),
		SourceInfoMode: protocompile.SourceInfoStandard, // keeps comments for the generated code
	}
	compiled, err := compiler.Compile(ctx, files...)
	if err != nil {
		return nil, err
	}
	request := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: files,
		Parameter:      proto.String("paths=source_relative"),
	}
	seen := map[string]bool{}
	for _, file := range compiled {
		request.ProtoFile = appendWithImports(request.ProtoFile, protodesc.ToFileDescriptorProto(file), compiled, seen)
	}
	return request, nil
}

// appendWithImports appends file after the files it imports that were
// compiled too (the standard imports are known to the plugins already).
func appendWithImports(out []*descriptorpb.FileDescriptorProto, file *descriptorpb.FileDescriptorProto, compiled linker.Files, seen map[string]bool) []*descriptorpb.FileDescriptorProto {
	if seen[file.GetName()] {
		return out
	}
	seen[file.GetName()] = true
	for _, dependency := range file.GetDependency() {
		if imported := compiled.FindFileByPath(dependency); imported != nil {
			out = appendWithImports(out, protodesc.ToFileDescriptorProto(imported), compiled, seen)
		}
	}
	return append(out, file)
}

func runPlugin(ctx context.Context, plugin string, request *pluginpb.CodeGeneratorRequest) (*pluginpb.CodeGeneratorResponse, error) {
	input, err := proto.Marshal(request)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "tool", plugin)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(input), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go tool %s: %w: %s", plugin, err, stderr.String())
	}
	response := &pluginpb.CodeGeneratorResponse{}
	if err := proto.Unmarshal(stdout.Bytes(), response); err != nil {
		return nil, fmt.Errorf("go tool %s: read its response: %w", plugin, err)
	}
	if response.Error != nil {
		return nil, fmt.Errorf("go tool %s: %s", plugin, response.GetError())
	}
	return response, nil
}

func writeFiles(root string, response *pluginpb.CodeGeneratorResponse) error {
	var errs []error
	for _, file := range response.GetFile() {
		if file.GetInsertionPoint() != "" {
			errs = append(errs, fmt.Errorf("%s: insertion points are not supported", file.GetName()))
			continue
		}
		path := filepath.Join(root, file.GetName())
		errs = append(errs, os.WriteFile(path, []byte(file.GetContent()), 0o644))
	}
	return errors.Join(errs...)
}
