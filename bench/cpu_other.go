//go:build !linux

package bench

import "time"

// processCPU is not available outside Linux.
func processCPU(int) (time.Duration, bool) { return 0, false }

// selfCPU is not available outside Linux.
func selfCPU() time.Duration { return 0 }
