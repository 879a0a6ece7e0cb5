package credentials

import "time"

// SetIssueWindow lets the moto tier's tests widen the issue window: the
// window bounds real time, which moto on a loaded machine cannot keep to.
// The fast tier keeps broker.IssueWindow and tests that it is enforced.
func SetIssueWindow(s *Service, d time.Duration) { s.issueWindow = d }
