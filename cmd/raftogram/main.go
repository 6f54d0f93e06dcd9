// Command raftogram runs one node of a raftogram cluster, and is the
// command-line client of one.
//
//	raftogram [-config config.yaml] [-dev]   run a node
//	raftogram COMMAND [flags] [args]         run a command (raftogram help)
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
	"sort"
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

// summaries holds each subcommand's one-line description for the usage
// text; a subcommand without one is still run but not listed.
var summaries = map[string]string{}

// Exit codes shared by every subcommand.
const (
	exitOK    = 0 // the command did what it was asked
	exitError = 1 // it ran but failed (the cluster refused, could not be reached, ...)
	exitUsage = 2 // bad command line: unknown command or flag, missing argument
)

// run is the whole program; it returns the exit code. No argument, or a
// flag first, runs a node; `help` (or -h/--help) prints the usage; a known
// command name runs that command; anything else is a usage error and never
// starts a node.
func run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !isHelpFlag(args[0])) {
		return serve(ctx, args, env, stdout, stderr)
	}
	name := args[0]
	if isHelpFlag(name) || name == "help" {
		if len(args) > 1 && name == "help" {
			if cmd, ok := subcommands[args[1]]; ok {
				return cmd(ctx, []string{"-help"}, env, stdout, stderr)
			}
		}
		usage(stdout)
		return exitOK
	}
	if cmd, ok := subcommands[name]; ok {
		return cmd(ctx, args[1:], env, stdout, stderr)
	}
	fmt.Fprintf(stderr, "raftogram: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func isHelpFlag(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// usage writes the program's usage: how to run a node and the commands.
func usage(w io.Writer) {
	fmt.Fprint(w, "Usage:\n  raftogram [-config FILE] [-dev]      run a node (see the README)\n"+
		"  raftogram COMMAND [flags] [args]     run a command\n  raftogram help COMMAND               a command's flags\n\n"+
		"Node flags:\n  -config FILE  the YAML config (env RAFTOGRAM_CONFIG; default config.yaml)\n"+
		"  -dev          human-readable logs (env RAFTOGRAM_DEV)\n  -version      print the version and exit\n\nCommands:\n")
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, summaries[n])
	}
	fmt.Fprint(w, "\nExit status: 0 success, 1 failure, 2 usage error.\n")
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
	srv, err := server.Open(ctx, cfg, ls, log, server.WithVersion(version))
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	stopHUP := reloadOnSIGHUP(srv, log)
	defer stopHUP()
	if err := srv.Run(ctx); err != nil {
		log.Error("stopped with error", "error", err)
		return 1
	}
	return 0
}

// reloadOnSIGHUP re-reads the node's TLS files, auth rules and JWT keys on
// every SIGHUP until the returned function is called.
func reloadOnSIGHUP(srv *server.Server, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-hup:
				if err := srv.Reload(); err != nil {
					log.Error("SIGHUP: reload failed; what did not load stays as it was", "error", err)
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

// defaultGCPercent is the node's GOGC unless the environment sets one: a
// node's live heap is small (tens of MB) and allocation-heavy, so collecting
// half as often costs little memory and measured -6 % CPU per acknowledged
// write at 64 clients (docs/performance.md).
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
