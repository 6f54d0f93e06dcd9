package bench

import "time"

// cpuSample is the CPU used so far by this process and by the server
// processes, taken at one instant.
type cpuSample struct {
	at       time.Time
	self     time.Duration
	server   time.Duration
	perPID   []time.Duration // server, by process
	serverOK bool
}

func sampleCPU(pids []int) cpuSample {
	s := cpuSample{at: time.Now(), self: selfCPU(), serverOK: len(pids) > 0}
	for _, pid := range pids {
		d, ok := processCPU(pid)
		if !ok {
			s.serverOK = false
			break
		}
		s.server += d
		s.perPID = append(s.perPID, d)
	}
	return s
}
