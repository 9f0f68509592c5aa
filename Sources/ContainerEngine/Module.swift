// ContainerEngine module
