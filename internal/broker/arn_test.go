package broker_test

import (
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
)

func TestPartitionComesFromTheARNElseTheRegion(t *testing.T) {
	cases := []struct{ name, arn, region, want string }{
		{"a commercial role names aws", "arn:aws:iam::123456789012:role/base", "eu-west-1", "aws"},
		{"a China role names aws-cn whatever the region", "arn:aws-cn:iam::123456789012:role/base", "", "aws-cn"},
		{"no ARN in a China region gives aws-cn", "", "cn-north-1", "aws-cn"},
		{"no ARN in GovCloud gives aws-us-gov", "", "us-gov-west-1", "aws-us-gov"},
		{"nothing known gives aws", "", "", "aws"},
		{"a malformed ARN falls back to the region", "not-an-arn", "cn-northwest-1", "aws-cn"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := broker.Partition(c.arn, c.region); got != c.want {
				t.Errorf("Partition(%q, %q) = %q, want %q", c.arn, c.region, got, c.want)
			}
		})
	}
}

func TestCheckRoleARNRefusesWhatIsNotARole(t *testing.T) {
	for _, bad := range []string{"", "arn:aws:iam::123:role/x", "arn:aws:iam::123456789012:user/x", "arn:aws:iam::123456789012:role/", "arn::iam::123456789012:role/x"} {
		if broker.CheckRoleARN(bad) == nil {
			t.Errorf("CheckRoleARN(%q) accepted it", bad)
		}
	}
	if err := broker.CheckRoleARN("arn:aws-us-gov:iam::123456789012:role/path/base"); err != nil {
		t.Errorf("a role ARN refused: %v", err)
	}
}
