// Command raftogram runs one node of a raftogram cluster.
//
//	raftogram [-config config.yaml] [-dev]
//
// See the README for the cluster set-up and config.yaml.dist for every key.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], environ(), os.Stdout, os.Stderr))
}

func environ() map[string]string {
	m := make(map[string]string)
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// command is a subcommand: it gets the arguments after its name and returns
// the exit code.
type command func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int

// subcommands maps a first argument to the subcommand it runs; each lives
// in its own file and registers itself from init.
var subcommands = map[string]command{}

// run is the whole program; it returns the exit code. With a subcommand
// name first it runs that; otherwise it runs a node.
func run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if cmd, ok := subcommands[args[0]]; ok {
			return cmd(ctx, args[1:], env, stdout, stderr)
		}
	}
	return serve(ctx, args, env, stdout, stderr)
}

// serve runs one node until ctx ends.
func serve(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("raftogram", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path to the YAML config (env RAFTOGRAM_CONFIG; default config.yaml)")
	dev := fs.Bool("dev", false, "human-readable logs (env RAFTOGRAM_DEV, any non-empty value)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: raftogram [-config FILE] [-dev]\n\nRuns one raftogram node.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "raftogram", version)
		return 0
	}
	path, explicit := *configPath, *configPath != ""
	if !explicit && env["RAFTOGRAM_CONFIG"] != "" {
		path, explicit = env["RAFTOGRAM_CONFIG"], true
	}
	if path == "" {
		path = "config.yaml"
	}
	cfg, err := config.Load(path, explicit, env)
	if err != nil {
		fmt.Fprintln(stderr, "raftogram:", err)
		return 2
	}
	log := newLogger(stderr, *dev || env["RAFTOGRAM_DEV"] != "", cfg.LogLevel)
	gc := tuneGC(env)
	log.Info("starting raftogram", "version", version, "node_id", cfg.NodeID, "peers", len(cfg.Cluster.Peers), "gogc", gc)

	ls, err := server.Listen(cfg)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	srv, err := server.Open(ctx, cfg, ls, log)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		log.Error("stopped with error", "error", err)
		return 1
	}
	return 0
}

// defaultGCPercent is the node's GOGC unless the environment sets one: a
// node's live heap is small (tens of MB) and allocation-heavy, so collecting
// half as often costs little memory and measured -6 % CPU per acknowledged
// write at 64 clients (design.md "Performance").
const defaultGCPercent = 200

// tuneGC sets the garbage collector's target to defaultGCPercent unless
// env has GOGC (which the runtime has applied already), and returns the
// setting in force.
func tuneGC(env map[string]string) string {
	if v, ok := env["GOGC"]; ok {
		return v
	}
	debug.SetGCPercent(defaultGCPercent)
	return strconv.Itoa(defaultGCPercent)
}

func newLogger(w io.Writer, dev bool, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if dev {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
