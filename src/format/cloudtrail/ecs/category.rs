//! Category: a CloudTrail event name -> its ECS `event.category` and `event.type`, as
//! Elastic's AWS integration assigns them. A name it does not list has no category and the
//! type `info`. The match is exact (case included).

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
    let key = event_name.as_bytes();
    let slots = slots();
    let mut slot = slot_of(key);
    loop {
        let (name, row) = slots[slot]?;
        if name.as_bytes() == key {
            let (category, types, _) = TABLE[usize::from(row)];
            return Some((category, types));
        }
        slot = (slot + 1) % SLOTS;
    }
}

/// Slots of the table [`of`] looks names up in: a power of two, under half full.
const SLOTS: usize = 256;

/// The first slot to look at for `name`: a hash of its length and of its first, middle and
/// last bytes (names that differ mostly differ there).
#[inline]
fn slot_of(name: &[u8]) -> usize {
    let n = name.len();
    let key = match name {
        [] => 0,
        _ => {
            n as u32
                | u32::from(name[0]) << 8
                | u32::from(name[n / 2]) << 16
                | u32::from(name[n - 1]) << 24
        }
    };
    (key.wrapping_mul(0x9E37_79B1) >> 24) as usize % SLOTS
}

/// Each listed name with its row of [`TABLE`], in open-addressed slots, made once.
fn slots() -> &'static [Option<(&'static str, u8)>; SLOTS] {
    static SLOTTED: std::sync::OnceLock<[Option<(&'static str, u8)>; SLOTS]> =
        std::sync::OnceLock::new();
    SLOTTED.get_or_init(|| {
        let mut slots = [None; SLOTS];
        for (row, (_, _, names)) in TABLE.iter().enumerate() {
            for &name in *names {
                let mut slot = slot_of(name.as_bytes());
                while slots[slot].is_some() {
                    slot = (slot + 1) % SLOTS;
                }
                slots[slot] = Some((name, row as u8));
            }
        }
        slots
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
