//! Authorization: a credential's allow list of IAM-style action patterns (`ec2:*`,
//! `ec2:Describe*`, `*`). Action names compare case-insensitively, as IAM's do.

pub fn allows(allow: &[String], action: &str) -> bool {
    let action = action.to_ascii_lowercase();
    allow
        .iter()
        .any(|p| crate::wildcard::matches(&p.to_ascii_lowercase(), &action))
}

#[cfg(test)]
mod tests {
    use super::allows;

    #[test]
    fn iam_style_patterns() {
        let ro = vec!["ec2:Describe*".to_string()];
        assert!(allows(&ro, "ec2:DescribeFlowLogs"));
        assert!(!allows(&ro, "ec2:CreateFlowLogs"));
        assert!(allows(&["ec2:*".into()], "ec2:DeleteVpc"));
        assert!(allows(&["*".into()], "ec2:DeleteVpc"));
        assert!(allows(&["EC2:createflowlogs".into()], "ec2:CreateFlowLogs"));
        assert!(!allows(&[], "ec2:DescribeVpcs"));
    }
}
