//! Durable state of the control plane behind the [`Store`] trait: VPCs, subnets, network
//! interfaces, flow logs, tags and ClientToken records. Every operation that checks and then
//! writes (duplicates, limits, address allocation, idempotency) runs in one transaction, so
//! concurrent requests cannot interleave between the check and the write.
//!
//! The store knows the resources' shapes and their relations; it does not know the wire
//! protocol (the API layer validates syntax and renders XML).

#[cfg(feature = "postgres")]
mod pg;
mod schema;
mod sqlite;
#[cfg(test)]
mod tests;

#[cfg(feature = "postgres")]
pub use pg::{redact as redact_url, PgOptions, PgStore};
pub use sqlite::SqliteStore;

use flowlog_model::{
    DeliverStatus, Destination, FlowLog, NetworkInterface, ResourceType, Subnet, Tags, TrafficType,
    Vpc,
};

/// The kinds of resource the store keeps, as errors name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Vpc,
    Subnet,
    NetworkInterface,
    FlowLog,
}

impl ResourceKind {
    /// The kind of an ID by its prefix (`vpc-`, `subnet-`, `eni-`, `fl-`).
    pub fn of_id(id: &str) -> Option<ResourceKind> {
        match id.split('-').next()? {
            "vpc" => Some(ResourceKind::Vpc),
            "subnet" => Some(ResourceKind::Subnet),
            "eni" => Some(ResourceKind::NetworkInterface),
            "fl" => Some(ResourceKind::FlowLog),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Vpc => "VPC",
            ResourceKind::Subnet => "subnet",
            ResourceKind::NetworkInterface => "network interface",
            ResourceKind::FlowLog => "flow log",
        }
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the store. Domain failures are typed here and given EC2 codes, statuses and
/// messages only in `flowlog-api/src/error.rs`, so every backend answers alike.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No resource `id` of `kind` in the account.
    #[error("{kind} {id} does not exist")]
    NotFound { kind: ResourceKind, id: String },
    /// An ID of no known kind.
    #[error("{id} is not a valid resource ID")]
    InvalidId { id: String },
    /// The resource still has dependants (subnets of a VPC, ENIs of a subnet).
    #[error("{kind} {id} has dependencies")]
    DependencyViolation { kind: ResourceKind, id: String },
    /// The subnet's range is not inside its VPC's.
    #[error("subnet range {cidr} is outside its VPC")]
    SubnetRange { cidr: String },
    /// The subnet's range overlaps another subnet of the VPC.
    #[error("subnet range {cidr} overlaps another subnet")]
    SubnetConflict { cidr: String },
    /// A requested private address outside the subnet's usable range.
    #[error("address {addr} is outside the subnet")]
    AddressOutOfRange { addr: std::net::Ipv4Addr },
    /// A requested private address already taken in the subnet.
    #[error("address {addr} is in use")]
    AddressInUse { addr: std::net::Ipv4Addr },
    /// No free address left in the subnet.
    #[error("subnet {subnet_id} has no free address")]
    SubnetFull { subnet_id: String },
    /// More tags on one resource than allowed.
    #[error("resource {id} would have more than {limit} tags")]
    TagLimitExceeded { id: String, limit: usize },
    /// A ClientToken reused with different parameters.
    #[error("client token reused with different parameters")]
    IdempotentParameterMismatch,
    /// An inventory (agent sync) names a resource that exists in another account. Nothing
    /// of the request is written.
    #[error("{kind} {id} belongs to another account")]
    ForeignResource { kind: &'static str, id: String },
    /// The database cannot be reached or the connection was lost; retrying later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database is busy (lock timeout, too many conflicts); retrying may work.
    #[error("the database is busy")]
    Busy,
    /// The database has a schema newer than this binary knows.
    #[error("the database schema is version {found}, newer than this flowlog knows (up to {known}): upgrade flowlog, or point it at another database")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Any other PostgreSQL failure.
    #[error("database error: {0}")]
    Postgres(String),
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The store URL or its settings are wrong.
    #[error("{0}")]
    Config(String),
}

/// Tags one resource may carry.
pub const TAG_LIMIT: usize = 50;

/// The table of a kind of resource (the same name in every backend).
pub(crate) fn table_name(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Vpc => "vpcs",
        ResourceKind::Subnet => "subnets",
        ResourceKind::NetworkInterface => "enis",
        ResourceKind::FlowLog => "flow_logs",
    }
}

/// The kind of resource a flow log is attached to.
pub(crate) fn kind_of(t: ResourceType) -> ResourceKind {
    match t {
        ResourceType::Vpc => ResourceKind::Vpc,
        ResourceType::Subnet => ResourceKind::Subnet,
        ResourceType::NetworkInterface => ResourceKind::NetworkInterface,
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One failed resource of CreateFlowLogs / one unknown ID of DeleteFlowLogs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unsuccessful {
    pub resource_id: String,
    pub code: String,
    pub message: String,
}

// The per-resource failures of CreateFlowLogs are kept phrased (code and message) because the
// whole answer is stored with its ClientToken and replayed verbatim, also by older or newer
// flowlogs sharing the database. They are phrased here once, for every backend.
impl Unsuccessful {
    pub fn not_found(kind: ResourceKind, id: &str) -> Unsuccessful {
        let (code, noun) = match kind {
            ResourceKind::Vpc => ("InvalidVpcID.NotFound", "vpc"),
            ResourceKind::Subnet => ("InvalidSubnetID.NotFound", "subnet"),
            ResourceKind::NetworkInterface => {
                ("InvalidNetworkInterfaceID.NotFound", "networkInterface")
            }
            ResourceKind::FlowLog => ("InvalidFlowLogId.NotFound", "flow log"),
        };
        Unsuccessful {
            resource_id: id.to_string(),
            code: code.to_string(),
            message: format!("The {noun} ID '{id}' does not exist"),
        }
    }

    pub fn already_exists(id: &str) -> Unsuccessful {
        Unsuccessful {
            resource_id: id.to_string(),
            code: "FlowLogAlreadyExists".to_string(),
            message: "Error. There is an existing Flow Log with the same configuration and log destination.".to_string(),
        }
    }

    pub fn limit_exceeded(id: &str) -> Unsuccessful {
        Unsuccessful {
            resource_id: id.to_string(),
            code: "FlowLogsLimitExceeded".to_string(),
            message: "You've reached the limit on the number of flow logs you can create."
                .to_string(),
        }
    }
}

/// The answer of CreateFlowLogs, kept with its ClientToken for replays.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreateOutcome {
    pub client_token: String,
    pub flow_log_ids: Vec<String>,
    pub unsuccessful: Vec<Unsuccessful>,
}

/// A validated CreateFlowLogs request, ready for the per-resource checks.
#[derive(Debug, Clone)]
pub struct NewFlowLogs {
    pub account_id: String,
    pub resource_type: ResourceType,
    pub resource_ids: Vec<String>,
    pub traffic_type: TrafficType,
    pub destination: Destination,
    pub log_format: Option<String>,
    pub max_aggregation_interval: Option<u32>,
    /// S3 `DestinationOptions` (None for CloudWatch Logs).
    pub destination_options: Option<flowlog_model::DestinationOptions>,
    pub tags: Tags,
    pub client_token: String,
    /// Canonical form of the request parameters, compared on token reuse.
    pub fingerprint: String,
    /// Flow logs allowed per resource (2 in 2018 mode); None for no limit.
    pub limit_per_resource: Option<u32>,
    /// Destination failure to report for every existing resource (S3 bucket check).
    pub destination_error: Option<(String, String)>,
    pub creation_time_ms: i64,
}

/// Result of a ClientToken lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    New,
    Replay(CreateOutcome),
    Mismatch,
}

/// Columns a DescribeFlowLogs filter can select on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowLogField {
    FlowLogId,
    ResourceId,
    TrafficType,
    LogDestinationType,
    LogGroupName,
    DeliverLogsStatus,
    TagKey,
    TagValue,
    Tag(String),
}

/// A DescribeFlowLogs selection: every condition must hold (AND); the values of one
/// condition are alternatives (OR) and may contain `*` and `?` wildcards.
#[derive(Debug, Clone, Default)]
pub struct FlowLogQuery {
    pub account_id: String,
    pub ids: Vec<String>,
    pub conditions: Vec<(FlowLogField, Vec<String>)>,
    /// Only flow logs created after this position (from a NextToken).
    pub after_seq: i64,
    pub limit: Option<usize>,
}

/// One page of flow logs; `last_seq` is set when more matches may follow.
#[derive(Debug, Clone)]
pub struct FlowLogPage {
    pub flow_logs: Vec<FlowLog>,
    pub next_seq: Option<i64>,
}

/// A new network interface; the address is allocated in the subnet when `None`.
#[derive(Debug, Clone)]
pub struct NewNetworkInterface {
    pub id: String,
    pub account_id: String,
    pub subnet_id: String,
    pub description: String,
    pub private_ip_address: Option<std::net::Ipv4Addr>,
    pub mac_address: String,
    pub security_group_ids: Vec<String>,
    pub tags: Tags,
}

/// Tag naming the host whose agent captures an ENI (written by agent sync). ENIs without it
/// are captured by every agent that has the bound interface.
pub const HOST_TAG: &str = "flowlog:host";

/// What one agent sync needs from the store: the resources of one host, read in proportion
/// to that host's ENIs (not to the whole table).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostView {
    /// ENIs of the account tagged `flowlog:host` = the host, or without that tag.
    pub enis: Vec<NetworkInterface>,
    /// The VPCs of those ENIs.
    pub vpcs: Vec<Vpc>,
    /// The subnets of those ENIs.
    pub subnets: Vec<Subnet>,
    /// The account's flow logs whose resource is one of those ENIs, their subnets or VPCs.
    pub flow_logs: Vec<FlowLog>,
}

fn host_of(eni: &NetworkInterface) -> Option<&str> {
    eni.tags
        .iter()
        .find(|(k, _)| k == HOST_TAG)
        .map(|(_, v)| v.as_str())
}

/// The control plane's persistence.
pub trait Store: Send + Sync {
    fn create_vpc(&self, vpc: &Vpc) -> Result<()>;
    fn vpcs(&self, account_id: &str) -> Result<Vec<Vpc>>;
    /// Fails with `DependencyViolation` while subnets exist; removes the VPC's flow logs.
    fn delete_vpc(&self, account_id: &str, id: &str) -> Result<()>;

    /// Checks the VPC, range and overlap, then inserts.
    fn create_subnet(&self, subnet: &Subnet) -> Result<()>;
    fn subnets(&self, account_id: &str) -> Result<Vec<Subnet>>;
    fn delete_subnet(&self, account_id: &str, id: &str) -> Result<()>;

    fn create_network_interface(&self, eni: &NewNetworkInterface) -> Result<NetworkInterface>;
    fn network_interfaces(&self, account_id: &str) -> Result<Vec<NetworkInterface>>;
    fn delete_network_interface(&self, account_id: &str, id: &str) -> Result<()>;

    /// Adds or replaces tags on existing resources (all of them must exist).
    fn create_tags(&self, account_id: &str, ids: &[String], tags: &Tags) -> Result<()>;
    /// Removes tags: a key alone removes it whatever its value; with a value only if equal.
    /// An empty list removes every tag of the resources.
    fn delete_tags(
        &self,
        account_id: &str,
        ids: &[String],
        tags: &[(String, Option<String>)],
    ) -> Result<()>;

    fn check_client_token(
        &self,
        account_id: &str,
        action: &str,
        token: &str,
        fingerprint: &str,
    ) -> Result<TokenCheck>;
    fn create_flow_logs(&self, req: &NewFlowLogs) -> Result<CreateOutcome>;
    /// Deletes the known IDs and returns the unknown ones, in request order.
    fn delete_flow_logs(&self, account_id: &str, ids: &[String]) -> Result<Vec<String>>;
    fn describe_flow_logs(&self, q: &FlowLogQuery) -> Result<FlowLogPage>;
    /// Sets the delivery status of flow log `id` if it belongs to `account_id` (a report
    /// about another account's flow log changes nothing).
    fn set_deliver_status(
        &self,
        account_id: &str,
        id: &str,
        status: DeliverStatus,
        error: Option<&str>,
    ) -> Result<()>;
    /// Every flow log of every account (the agent's desired state).
    fn all_flow_logs(&self) -> Result<Vec<FlowLog>>;
    /// Every network interface of every account.
    fn all_network_interfaces(&self) -> Result<Vec<NetworkInterface>>;

    /// Inserts or updates resources of `account_id` found by inventory (discovery or file),
    /// bypassing the API's creation checks; tags given here are set, other tags are kept.
    /// Every resource must be of `account_id`, and every ID it names or refers to (VPC of a
    /// subnet, subnet and VPC of an ENI) must be unknown or owned by that account: otherwise
    /// [`StoreError::ForeignResource`] and nothing is written.
    fn register(
        &self,
        account_id: &str,
        vpcs: &[Vpc],
        subnets: &[Subnet],
        enis: &[NetworkInterface],
    ) -> Result<()>;
    /// Sets `status` of an ENI of `account_id` (`in-use` while its interface is present,
    /// `available` otherwise).
    fn set_network_interface_status(&self, account_id: &str, id: &str, status: &str) -> Result<()>;

    /// A number that changes whenever anything that can change an agent's desired state is
    /// written (VPCs, subnets, ENIs, flow logs, their tags), in any account, by any process
    /// sharing the database. Equal numbers mean nothing changed in between. `None`: this
    /// backend keeps no such number, and callers must recompute every time.
    fn change_version(&self) -> Result<Option<i64>> {
        Ok(None)
    }

    /// The resources `host`'s agent in `account_id` is given (see [`HostView`]). Backends
    /// answer this from indexes; the default reads the account's tables whole.
    fn host_view(&self, account_id: &str, host: &str) -> Result<HostView> {
        let enis: Vec<NetworkInterface> = self
            .network_interfaces(account_id)?
            .into_iter()
            .filter(|e| host_of(e).is_none_or(|h| h == host))
            .collect();
        let has = |id: &str, f: fn(&NetworkInterface) -> &str| enis.iter().any(|e| f(e) == id);
        let vpcs: Vec<Vpc> = self
            .vpcs(account_id)?
            .into_iter()
            .filter(|v| has(&v.id, |e| &e.vpc_id))
            .collect();
        let subnets: Vec<Subnet> = self
            .subnets(account_id)?
            .into_iter()
            .filter(|s| has(&s.id, |e| &e.subnet_id))
            .collect();
        let flow_logs = self
            .all_flow_logs()?
            .into_iter()
            .filter(|f| f.account_id == account_id)
            .filter(|f| {
                enis.iter().any(|e| {
                    f.resource_id == e.id
                        || f.resource_id == e.subnet_id
                        || f.resource_id == e.vpc_id
                })
            })
            .collect();
        Ok(HostView {
            enis,
            vpcs,
            subnets,
            flow_logs,
        })
    }

    /// For each of `ids` that is an ENI of `account_id`: its `flowlog:host` tag (None when
    /// untagged). IDs that are not the account's ENIs are absent from the answer.
    fn eni_hosts(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Option<String>>> {
        Ok(self
            .network_interfaces(account_id)?
            .into_iter()
            .filter(|e| ids.contains(&e.id))
            .map(|e| {
                let host = host_of(&e).map(str::to_string);
                (e.id, host)
            })
            .collect())
    }
}
