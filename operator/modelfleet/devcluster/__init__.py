"""The local control plane used by the demo and the tests (layer: devcluster; may import `clients`)."""

from modelfleet.devcluster.binaries import SetupError
from modelfleet.devcluster.cluster import ClusterConfig, DevCluster, StartError, default_state_dir

__all__ = ["ClusterConfig", "DevCluster", "SetupError", "StartError", "default_state_dir"]
