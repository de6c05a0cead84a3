//! Category: a CloudTrail event name -> its ECS `event.category` and `event.type`, as
//! Elastic's AWS integration assigns them. A name it does not list has no category and the
//! type `info`. The match is exact (case included).

use std::collections::HashMap;
use std::sync::OnceLock;

/// `(category, types, event names)`, as the integration groups them.
const TABLE: &[(&[&str], &[&str], &[&str])] = &[
    (
        &["iam"],
        &["group", "change"],
        &[
            "AddUserToGroup",
            "AttachGroupPolicy",
            "DeleteGroupPolicy",
            "DetachGroupPolicy",
            "PutGroupPolicy",
            "RemoveUserFromGroup",
            "UpdateGroup",
        ],
    ),
    (&["iam"], &["group", "creation"], &["CreateGroup"]),
    (&["iam"], &["group", "deletion"], &["DeleteGroup"]),
    (
        &["iam"],
        &["group", "info"],
        &[
            "GetGroup",
            "GetGroupPolicy",
            "ListAttachedGroupPolicies",
            "ListGroupPolicies",
            "ListGroups",
        ],
    ),
    (
        &["iam"],
        &["user", "change"],
        &[
            "AttachUserPolicy",
            "ChangePassword",
            "CreateAccessKey",
            "CreateVirtualMFADevice",
            "DeactivateMFADevice",
            "DeleteAccessKey",
            "DeleteSSHPublicKey",
            "DeleteUserPermissionsBoundary",
            "DeleteUserPolicy",
            "DeleteVirtualMFADevice",
            "DetachUserPolicy",
            "EnableMFADevice",
            "PutUserPermissionsBoundary",
            "PutUserPolicy",
            "TagUser",
            "UntagUser",
            "UpdateAccessKey",
            "UpdateLoginProfile",
            "UpdateSSHPublicKey",
            "UpdateUser",
        ],
    ),
    (&["iam"], &["user", "creation"], &["CreateUser"]),
    (&["iam"], &["user", "deletion"], &["DeleteUser"]),
    (
        &["iam"],
        &["user", "info"],
        &[
            "GetUser",
            "GetUserPolicy",
            "ListAttachedUserPolicies",
            "ListGroupsForUser",
            "ListUserPolicies",
            "ListUsers",
            "ListUserTags",
        ],
    ),
    (&["iam"], &["admin", "creation"], &["CreateKeyPair"]),
    (
        &["iam"],
        &["admin", "change"],
        &[
            "SetDefaultPolicyVersion",
            "SetSecurityTokenServicePreferences",
            "UpdateAccountPasswordPolicy",
            "UpdateRole",
        ],
    ),
    (
        &["iam"],
        &["info"],
        &["ListRoles", "GetPolicy", "ListAttachedRolePolicies"],
    ),
    (&["iam"], &["creation"], &["CreatePolicy"]),
    (&["iam"], &["change"], &["AttachRolePolicy"]),
    (
        &["authentication"],
        &["info"],
        &["AssumeRole", "ConsoleLogin", "GetCallerIdentity"],
    ),
    (
        &["file"],
        &["creation"],
        &["CreateBucket", "CreateDocument"],
    ),
    (&["file"], &["deletion"], &["DeleteBucket", "DeleteObject"]),
    (
        &["file"],
        &["info"],
        &["ListBuckets", "ListObjects", "HeadObject", "GetObject"],
    ),
    (&["file"], &["change"], &["PutObject"]),
    (
        &["host"],
        &["info"],
        &[
            "DescribeInstances",
            "DescribeVolumes",
            "ListInstanceAssociations",
        ],
    ),
    (
        &["network"],
        &["info"],
        &[
            "DescribeSecurityGroups",
            "DescribeNetworkInterfaces",
            "DescribeVpcs",
            "DescribeNetworkAcls",
            "DescribeLoadBalancers",
        ],
    ),
    (
        &["network"],
        &["access"],
        &["AuthorizeSecurityGroupIngress"],
    ),
    (
        &["api"],
        &["info"],
        &["DescribeRegions", "Publish", "Converse"],
    ),
    (&["configuration"], &["info"], &["DescribeTrails"]),
    (&["configuration"], &["creation"], &["CreateTopic"]),
    (&["configuration"], &["change"], &["Subscribe"]),
    (&["configuration"], &["deletion"], &["DeleteTrail"]),
    (&["package"], &["info"], &["ListFunctions"]),
    (
        &["database"],
        &["info"],
        &["ListTables", "DescribeDBInstances"],
    ),
    (&["process"], &["start"], &["SendCommand"]),
    (
        &["session"],
        &["start"],
        &[
            "StartSession",
            "CreateControlChannel",
            "OpenControlChannel",
            "CreateDataChannel",
            "OpenDataChannel",
        ],
    ),
    (&["session"], &["end"], &["TerminateSession"]),
];

/// The category and types of `event_name`, when the integration lists it.
pub fn of(event_name: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    let (category, types, _) = TABLE[*rows().get(event_name)?];
    Some((category, types))
}

/// Each listed name with its row of [`TABLE`], made once: a lookup by hash, not a search of
/// every name, which ran for every event.
fn rows() -> &'static HashMap<&'static str, usize> {
    static ROWS: OnceLock<HashMap<&'static str, usize>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let rows = TABLE.iter().enumerate();
        rows.flat_map(|(row, (_, _, names))| names.iter().map(move |&name| (name, row)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_listed_once_and_looked_up_exactly() {
        let mut all: Vec<&str> = TABLE
            .iter()
            .flat_map(|(_, _, n)| n.iter().copied())
            .collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "a name in two rows");
        assert_eq!(count, 91);
        assert_eq!(
            of("CreateGroup"),
            Some((&["iam"][..], &["group", "creation"][..]))
        );
        assert_eq!(
            of("ConsoleLogin").map(|c| c.0),
            Some(&["authentication"][..])
        );
        assert_eq!(of("consolelogin"), None);
        assert_eq!(of("RunInstances"), None);
        assert_eq!(of(""), None);
        for (category, types, names) in TABLE {
            for name in *names {
                assert_eq!(of(name), Some((*category, *types)), "{name}");
            }
        }
    }
}
