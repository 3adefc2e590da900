"""The local executor: a small kubelet stand-in that runs the pods bound to its Node as local processes.

It exists so that the demo and the end-to-end tests train and serve for real without Docker: the image name is ignored
and each container's command runs in the project's Python environment, inside a private mount namespace where its
volumes and termination-message file appear at the paths its spec names.
"""
