// Package failpoint lets crash tests stop a process at a precise point of a
// protocol (for example between the dead-letter commit and the raw-table
// commit) with SIGKILL, the way a power cut or an OOM kill would.
//
// Points are configured from outside (eventlake reads EVENTLAKE_FAILPOINTS,
// for example "ingest/before-commit=3,ingest/after-dlq-commit=1": kill the
// process on the 3rd and 1st time the point is reached). A nil *Set does
// nothing, which is what production runs use.
package failpoint

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// EnvVar is the environment variable eventlake reads failpoints from.
const EnvVar = "EVENTLAKE_FAILPOINTS"

// Set is a set of armed failpoints.
type Set struct {
	mu     sync.Mutex
	armed  map[string]int // point -> remaining hits before the kill
	killFn func()
}

// Parse reads a spec like "a=3,b=1". An empty spec yields a nil Set.
func Parse(spec string) (*Set, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	s := &Set{armed: map[string]int{}, killFn: killSelf}
	for _, part := range strings.Split(spec, ",") {
		name, nth, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			nth = "1"
		}
		n, err := strconv.Atoi(nth)
		if err != nil || n < 1 || name == "" {
			return nil, fmt.Errorf("%s: %q is not point=N with N >= 1", EnvVar, part)
		}
		s.armed[name] = n
	}
	return s, nil
}

// Hit counts one pass through point name and kills the process when the
// configured count is reached.
func (s *Set) Hit(name string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	n, ok := s.armed[name]
	if ok {
		n--
		s.armed[name] = n
	}
	s.mu.Unlock()
	if ok && n == 0 {
		s.killFn()
	}
}

func killSelf() {
	_ = syscall.Kill(syscall.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; wait for it to land
}
