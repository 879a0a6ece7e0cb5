package localstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrAlreadyRunning means another local stack runs from the same directory
// (.local): a second one would overwrite its stack.json, and remove it on
// stopping while the first still runs.
var ErrAlreadyRunning = errors.New("a local stack is already running from this directory")

// lockFile is held, with an exclusive lock, for as long as a stack runs
// from its directory. The lock goes with the process, however it ends,
// so a crashed stack never leaves it behind. The file stays: removing it
// would let a third stack lock a new file while a second holds the old.
const lockFile = "run.lock"

// lockDir takes the directory's lock without waiting, and writes this
// process's id into the lock file for the message of the next one.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !held {
		pid, _ := os.ReadFile(path)
		f.Close()
		owner := ""
		if p := strings.TrimSpace(string(pid)); p != "" {
			owner = " (process " + p + ")"
		}
		return nil, fmt.Errorf("%w%s: %s is its stack file; stop it first (Ctrl-C in its terminal), or start this one from another checkout with other MOTO_PORT and PORT",
			ErrAlreadyRunning, owner, filepath.Join(dir, "stack.json"))
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
