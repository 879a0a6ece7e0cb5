package localstack

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/exitcode"
)

func TestOneStackPerDirectory(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a second stack in the same directory is refused with exit status 4 and told who holds it", func(t *testing.T) {
		_, err := lockDir(dir)
		if !errors.Is(err, ErrAlreadyRunning) || ExitCode(err) != exitcode.Environment {
			t.Fatalf("second lock: %v (exit %d), want ErrAlreadyRunning, exit %d", err, ExitCode(err), exitcode.Environment)
		}
		if !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), "stack.json") {
			t.Errorf("message %q names neither the running process nor its stack file", err)
		}
	})
	t.Run("a stack in another directory is not concerned", func(t *testing.T) {
		other, err := lockDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		other()
	})
	t.Run("once the first stops, the directory is free again", func(t *testing.T) {
		unlock()
		again, err := lockDir(dir)
		if err != nil {
			t.Fatalf("lock after release: %v", err)
		}
		again()
	})
}
