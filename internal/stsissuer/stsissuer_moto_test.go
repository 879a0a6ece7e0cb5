//go:build integration

package stsissuer_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

func TestIssueAssumesTheRoleWithTheSessionPolicyInMoto(t *testing.T) {
	// A moto of its own: the check reads moto's whole state back.
	moto := mototest.Private(t)
	rec := &recordingSTS{next: sts.NewFromConfig(mototest.ConfigFor(moto))}
	iss := newIssuer(t, rec)
	req := validRequest()
	req.CutoffTag = broker.CutoffTag(req.UserID, time.Date(2026, 11, 30, 12, 0, 5, 123e6, time.UTC))
	before := time.Now()

	creds, err := iss.Issue(t.Context(), req)
	if err != nil {
		t.Fatalf("Issue() = %v", err)
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" || creds.SessionToken == "" {
		t.Errorf("incomplete credentials: %+v", creds)
	}
	if lo, hi := before.Add(req.Duration-time.Minute), time.Now().Add(req.Duration+time.Minute); creds.Expiration.Before(lo) || creds.Expiration.After(hi) {
		t.Errorf("expiration %v, want about %v from now", creds.Expiration, req.Duration)
	}

	got := assumedRole(t, moto, creds.AccessKeyID)
	want := motoAssumedRole{AccessKeyID: creds.AccessKeyID, SessionName: req.SessionName, RoleARN: roleARN, Policy: policy}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AssumeRole as moto recorded it (-want +got):\n%s", diff)
	}
	in := rec.inputs[0]
	sent := []string{aws.ToString(in.SourceIdentity), fmt.Sprint(aws.ToInt32(in.DurationSeconds))}
	for _, tag := range in.Tags {
		sent = append(sent, aws.ToString(tag.Key)+"="+aws.ToString(tag.Value))
	}
	if diff := cmp.Diff([]string{req.UserID, "900", broker.UserTagKey + "=" + broker.UserTag(req.UserID), broker.CutoffTagKey + "=" + req.CutoffTag}, sent); diff != "" {
		t.Errorf("SourceIdentity, DurationSeconds and tags sent (-want +got):\n%s", diff)
	}
}

// motoAssumedRole is an entry of sts.AssumedRole in moto's data.json.
type motoAssumedRole struct {
	AccessKeyID string `json:"access_key_id"`
	SessionName string `json:"session_name"`
	RoleARN     string `json:"role_arn"`
	Policy      string `json:"policy"`
}

func assumedRole(t *testing.T, moto, accessKeyID string) motoAssumedRole {
	t.Helper()
	var roles []motoAssumedRole
	if err := json.Unmarshal(mototest.DataAt(t, moto, "sts")["AssumedRole"], &roles); err != nil {
		t.Fatalf("decode moto sts.AssumedRole: %v", err)
	}
	for _, r := range roles {
		if r.AccessKeyID == accessKeyID {
			return r
		}
	}
	t.Fatalf("moto recorded no AssumeRole for access key %s", accessKeyID)
	return motoAssumedRole{}
}
