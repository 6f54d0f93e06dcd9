package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/raftogram/raftogram/torture"
)

// Flags of -profile failover (torture.MeasureFailover).
var (
	profile = flag.String("profile", "", `"failover": measure availability around leader kills, graceful restarts and follower pauses instead of checking histories (uses -nodes, -writers as the number of writer clients, -bin, -dir, -keep)`)
	kills   = flag.Int("kills", 20, "failover profile: SIGKILLs of the leader")
	terms   = flag.Int("terms", 10, "failover profile: SIGTERMs (graceful restarts) of the leader")
	pauses  = flag.Int("pauses", 3, "failover profile: SIGSTOPs of a follower")
	steady  = flag.Duration("steady", 30*time.Second, "failover profile: fault-free traffic first, counting elections")
	hbT     = flag.Duration("heartbeat-timeout", 0, "failover profile: raft.heartbeat_timeout of the nodes (0: the default)")
	elT     = flag.Duration("election-timeout", 0, "failover profile: raft.election_timeout of the nodes (0: the default)")
	leaseT  = flag.Duration("leader-lease-timeout", 0, "failover profile: raft.leader_lease_timeout of the nodes (0: the default)")
)

// runFailover runs the failover profile and prints its report. It returns
// the exit status: 0 measured, 2 the harness could not run.
func runFailover(nodes, writers int, bin, dir string, keep bool) int {
	workdir := dir
	if workdir == "" {
		var err error
		if workdir, err = os.MkdirTemp("", "raftogram-failover-"); err != nil {
			fmt.Fprintln(os.Stderr, "torture:", err)
			return 2
		}
	}
	rt := torture.ProductRaftTuning()
	for _, f := range []struct {
		v   time.Duration
		dst *time.Duration
	}{{*hbT, &rt.HeartbeatTimeout}, {*elT, &rt.ElectionTimeout}, {*leaseT, &rt.LeaderLeaseTimeout}} {
		if f.v > 0 {
			*f.dst = f.v
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := torture.MeasureFailover(ctx, torture.FailoverOptions{
		Bin: bin, Dir: workdir, Nodes: nodes, Clients: writers,
		Steady: *steady, Pauses: *pauses, Terms: *terms, Kills: *kills, Raft: rt,
		Logf: func(format string, args ...any) {
			fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "torture: failover profile: %v\nworkdir kept: %s\n", err, workdir)
		return 2
	}
	fmt.Print(rep.Format())
	if keep || dir != "" {
		fmt.Printf("workdir: %s\n", workdir)
	} else {
		os.RemoveAll(workdir)
	}
	return 0
}
