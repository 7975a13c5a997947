package memory_test

import (
	"testing"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
}

// TestShared: two users of one memory store are one process sharing one
// store, the only way a memory store is shared.
func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		s := memory.New()
		return s, s
	}, 0)
}
