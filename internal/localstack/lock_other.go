//go:build !unix

package localstack

import "os"

// tryLock does not lock where flock(2) does not exist: moto_server and
// make, which the local stack needs, are Unix tools anyway.
func tryLock(*os.File) (bool, error) { return true, nil }
