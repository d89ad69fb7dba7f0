package sfu

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRegistryRunStopsWithContext(t *testing.T) {
	reg := NewRegistry(DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- reg.Run(ctx) }()
	time.Sleep(2 * TickInterval)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
