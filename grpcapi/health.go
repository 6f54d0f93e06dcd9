package grpcapi

import (
	"context"
	"sync"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/internal/diskspace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// MessengerService is the health service name of the Messenger API.
var MessengerService = raftogramv1.Messenger_ServiceDesc.ServiceName

// HealthNode is the Raft member the gRPC health statuses follow (a
// *cluster.Node).
type HealthNode interface {
	Status() cluster.Status
	Watch() <-chan struct{}
}

// healthRecheck bounds how long a status may lag a change nobody signals
// (the write guard's alarm); role and leader changes apply at once.
const healthRecheck = 500 * time.Millisecond

// Health serves grpc.health.v1.Health (google.golang.org/grpc/health) for
// one node:
//
//   - service "" is SERVING while the node runs and knows a leader
//     (itself or another node), NOT_SERVING otherwise;
//   - service raftogram.v1.Messenger is SERVING only where a unary write
//     would succeed now: a leader is known, this node leads or forwards
//     writes (forward_writes), and the free-space alarm (Options.Space)
//     lets writes through;
//   - both are NOT_SERVING from Shutdown on.
//
// Statuses follow the node's role and leader observations (HealthNode.Watch)
// at once, and the alarm within healthRecheck.
type Health struct {
	*health.Server

	node    HealthNode
	space   *diskspace.Alarm
	forward bool

	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// NewHealth returns the health service of node, with opts.ForwardWrites and
// opts.Space, and starts following the node. Call Shutdown when the node
// stops.
func NewHealth(node HealthNode, opts Options) *Health {
	h := &Health{Server: health.NewServer(), node: node, space: opts.Space, forward: opts.ForwardWrites, done: make(chan struct{})}
	h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	h.SetServingStatus(MessengerService, healthpb.HealthCheckResponse_NOT_SERVING)
	h.update()
	h.wg.Add(1)
	go h.follow()
	return h
}

// Register registers the health service on srv.
func (h *Health) Register(srv grpc.ServiceRegistrar) { healthpb.RegisterHealthServer(srv, h) }

// statusEvery is how many rechecks reuse the last node status (the alarm
// is read on every one): role and leader changes arrive through Watch, so
// reading the status again is only a safety net.
const statusEvery = 4

func (h *Health) follow() {
	defer h.wg.Done()
	t := time.NewTicker(healthRecheck)
	defer t.Stop()
	// Take the next watch before reading the status, so no change falls
	// between the two.
	watch := h.node.Watch()
	st := h.node.Status()
	for ticks := 1; ; ticks++ {
		select {
		case <-h.done:
			return
		case <-watch:
			watch = h.node.Watch()
			st = h.node.Status()
		case <-t.C:
			if ticks%statusEvery == 0 {
				st = h.node.Status()
			}
		}
		h.set(st)
	}
}

// update sets both statuses from the node's current state.
func (h *Health) update() { h.set(h.node.Status()) }

// set sets both statuses from st and the alarm.
func (h *Health) set(st cluster.Status) {
	known := st.LeaderID != ""
	writes := known && (st.IsLeader || h.forward)
	if writes && h.space != nil && h.space.CheckWrite() != nil {
		writes = false
	}
	select {
	case <-h.done:
		return // Shutdown's NOT_SERVING is final
	default:
	}
	h.SetServingStatus("", servingIf(known))
	h.SetServingStatus(MessengerService, servingIf(writes))
}

func servingIf(ok bool) healthpb.HealthCheckResponse_ServingStatus {
	if ok {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// Shutdown sets every service NOT_SERVING for good, ends open Watch
// streams (after they were sent NOT_SERVING) and stops following the
// node. It is idempotent.
func (h *Health) Shutdown() {
	h.stopOnce.Do(func() {
		close(h.done)
		h.wg.Wait()
		h.Server.Shutdown()
	})
}

// Watch is health.Server's Watch, ended with Unavailable once Shutdown ran
// and the stream was sent NOT_SERVING (or a second passed), so a watching
// client does not hold a graceful stop open.
func (h *Health) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ws := &watchStream{Health_WatchServer: stream, ctx: ctx, done: h.done, final: make(chan struct{})}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-h.done:
			select {
			case <-ws.final:
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			close(stopped)
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, ws)
	select {
	case <-stopped:
		return status.Error(codes.Unavailable, "server shutting down")
	default:
		return err
	}
}

// watchStream is a Watch stream with a context that ends at shutdown; it
// closes final once it sent NOT_SERVING after shutdown began.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx   context.Context
	done  <-chan struct{}
	final chan struct{}
	once  sync.Once
}

func (w *watchStream) Context() context.Context { return w.ctx }

func (w *watchStream) Send(resp *healthpb.HealthCheckResponse) error {
	err := w.Health_WatchServer.Send(resp)
	select {
	case <-w.done:
		if resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			w.once.Do(func() { close(w.final) })
		}
	default:
	}
	return err
}
