package audit

import "testing"

// rec is a minimal valid record.
func rec(requestID string) Record {
	return Record{Protocol: ProtocolHTTP, Kind: KindSQL, Outcome: OutcomeOK, Statement: "SELECT 1", RequestID: requestID}
}

// openLog opens the log in dir with opts, closed at the end of the test.
func openLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
