package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestRunConfigSelection(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		out  string
	}{
		{"version", []string{"-version"}, nil, 0, "raftogram dev"},
		{"missing -config file", []string{"-config", missing}, nil, 2, "nope.yaml"},
		{"missing RAFTOGRAM_CONFIG file", nil, map[string]string{"RAFTOGRAM_CONFIG": missing}, 2, "nope.yaml"},
		{"flag beats env", []string{"-config", missing}, map[string]string{"RAFTOGRAM_CONFIG": "/elsewhere.yaml"}, 2, "nope.yaml"},
		{"invalid env", nil, map[string]string{"RAFTOGRAM_CLUSTER_PEERS": "node1=127.0.0.1:7000/127.0.0.1:9000,node2=127.0.0.1:7001/127.0.0.1:9001"}, 2, "odd number"},
		{"unknown flag", []string{"-bogus"}, nil, 2, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := map[string]string{"RAFTOGRAM_DATA_DIR": filepath.Join(dir, "data")}
			for k, v := range tc.env {
				env[k] = v
			}
			code := run(context.Background(), tc.args, env, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
				t.Fatalf("exit %d, output %q; want exit %d mentioning %q", code, stdout.String()+stderr.String(), tc.code, tc.out)
			}
		})
	}
}

func TestTuneGCDefaultsTo200UnlessGOGCIsSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	if got := tuneGC(map[string]string{}); got != "200" {
		t.Fatalf("tuneGC without GOGC = %q, want 200", got)
	}
	if now := debug.SetGCPercent(100); now != defaultGCPercent {
		t.Fatalf("GC percent after tuneGC = %d, want %d", now, defaultGCPercent)
	}
	if got := tuneGC(map[string]string{"GOGC": "off"}); got != "off" {
		t.Fatalf("tuneGC with GOGC=off = %q, want the environment's value", got)
	}
	if now := debug.SetGCPercent(100); now != 100 {
		t.Fatalf("tuneGC overrode GOGC from the environment: GC percent %d", now)
	}
}

// Only no argument or a flag first runs a node: a word that is not a
// command is a usage error (it used to start a node in ./data/node1).
func TestUnknownCommandIsAUsageErrorAndHelpListsCommands(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"RAFTOGRAM_DATA_DIR": filepath.Join(dir, "data")}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bogus"}, env, &stdout, &stderr); code != exitUsage {
		t.Fatalf("raftogram bogus: exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stderr.String(), `unknown command "bogus"`) || !strings.Contains(stderr.String(), "Commands:") {
		t.Fatalf("raftogram bogus: stderr %q lacks the error and the usage", stderr.String())
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		stdout.Reset()
		if code := run(context.Background(), args, env, &stdout, &stderr); code != exitOK {
			t.Fatalf("raftogram %v: exit %d", args, code)
		}
		for name := range subcommands {
			if !strings.Contains(stdout.String(), name) {
				t.Fatalf("raftogram %v: usage %q does not list %q", args, stdout.String(), name)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatalf("a usage error created the data directory (stat: %v)", err)
	}
}
