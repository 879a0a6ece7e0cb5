package broker

import "strings"

// CheckRoleARN reports whether arn names an IAM role
// (arn:<partition>:iam::<account>:role/<name>) as an Internal error: a role
// ARN comes from the deployment, never from a caller.
func CheckRoleARN(arn string) error {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iam" || parts[3] != "" ||
		!isAccountID(parts[4]) || !strings.HasPrefix(parts[5], "role/") || len(parts[5]) == len("role/") {
		return Errorf(Internal, "role arn", "%q is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)", arn)
	}
	return nil
}

// Partition is the one place the AWS partition of the buckets' ARNs is
// decided ("aws", "aws-cn", "aws-us-gov"): the partition of the deployment's
// ARN when one is known (the base role's), else the region's. The session
// policies, the revoker's resource denies and the operator commands'
// size checks must all name the same one.
func Partition(arn, region string) string {
	if parts := strings.SplitN(arn, ":", 3); len(parts) == 3 && parts[0] == "arn" && parts[1] != "" {
		return parts[1]
	}
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
