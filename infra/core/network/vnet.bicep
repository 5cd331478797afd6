// A VNet for the Container Apps environment (workload-profile environments need a /27 or larger).
param name string
param location string
param tags object = {}

resource vnet 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: [ '10.40.0.0/16' ] }
    subnets: [
      {
        name: 'apps'
        properties: {
          addressPrefix: '10.40.0.0/23'
          delegations: [ { name: 'aca', properties: { serviceName: 'Microsoft.App/environments' } } ]
          serviceEndpoints: [ { service: 'Microsoft.Storage' } ]
        }
      }
    ]
  }
}

output id string = vnet.id
output appsSubnetId string = vnet.properties.subnets[0].id
