package export

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left over after
// them: servers not stopped, connections not closed, workers not ended.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
